"""The written-down list of built-in feature names (what an import checks a customers header against) is the one
the feature functions produce today."""

from features.names import BUILTIN_FEATURE_COLUMNS, builtin_feature_columns


def test_written_down_names_are_the_computed_ones() -> None:
    computed = builtin_feature_columns()
    assert BUILTIN_FEATURE_COLUMNS == computed, (
        f"features/names.py: BUILTIN_FEATURE_COLUMNS is out of date; "
        f"added {sorted(computed - BUILTIN_FEATURE_COLUMNS)}, "
        f"gone {sorted(BUILTIN_FEATURE_COLUMNS - computed)}"
    )
