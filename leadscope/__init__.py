"""leadscope package."""
