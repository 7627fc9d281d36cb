"""Our normalise-and-hash rules against the platforms' official SDKs, used here as oracles only:
facebook-business `Normalize.normalize_field` (Meta) and google-ads-datamanager-util `Formatter` (Google)."""

from __future__ import annotations

import pytest
from facebook_business.adobjects.serverside.normalize import Normalize
from google.ads.datamanager_util import Encoding, Formatter

from serving.signals import hashing

EMAILS = [
    "john.doe@example.com",
    "  John.Doe@Example.COM ",
    "JOHN.DOE+crm@gmail.com",
    "j.o.h.n@googlemail.com",
    "\tmarie-claire@exämple.fr\n",
    "用户@例子.中国",
    "a@b.co",
]
# (as typed, the record's country, the same number in E.164): national numbers need the country to be E.164
PHONES = [
    ("+1 (650) 555-1234", "US", "+16505551234"),
    ("+1-650-555-1234", None, "+16505551234"),
    ("(650) 555 1234", "US", "+16505551234"),
    ("+86 138 0013 8000", "CN", "+8613800138000"),
    ("138-0013-8000", "CN", "+8613800138000"),
    ("+44 20 7946 0958", "GB", "+442079460958"),
    ("0044 20 7946 0958", "GB", "+442079460958"),
    ("+49 (0)30 123456", "DE", "+4930123456"),
]
NAMES = ["  Émile ", "ZOË", "O'Brien", "José María", "李", "Ångström-Smith"]
CITIES = ["San Francisco", "St. Louis", "Ho Chi Minh City 7", "Köln", "(New) York-City"]
ZIPS = ["94035", "94035-1234", " sw1a 1aa ", "100000"]
COUNTRIES = ["US", " gb ", "C.N."]


@pytest.mark.parametrize("email", EMAILS)
def test_email_hashes_match_both_sdks(email) -> None:
    assert hashing.meta_email(email) == Normalize.normalize_field("em", email)
    assert hashing.google_email(email) == Formatter().process_email_address(email, Encoding.HEX)


def test_gmail_dots_count_for_google_not_for_meta() -> None:
    a, b = "john.doe@gmail.com", "johndoe@gmail.com"
    assert hashing.google_email(a) == hashing.google_email(b)
    assert hashing.meta_email(a) != hashing.meta_email(b)


@pytest.mark.parametrize(("raw", "country", "e164"), PHONES)
def test_phone_hashes_match_both_sdks(raw, country, e164) -> None:
    assert hashing.e164(raw, country) == e164
    meta = hashing.meta_phone(raw, country)
    google = hashing.google_phone(raw, country)
    assert meta == Normalize.normalize_field("ph", e164) and google == Formatter().process_phone_number(
        e164, Encoding.HEX
    )
    if raw.startswith("+") and "(0)" not in raw:  # already international: the SDKs read it the same way unaided
        assert meta == Normalize.normalize_field("ph", raw)
        assert google == Formatter().process_phone_number(raw, Encoding.HEX)
    assert meta != google  # Meta hashes the digits, Google keeps the '+'


@pytest.mark.parametrize("name", NAMES)
def test_name_hashes_match_both_sdks(name) -> None:
    assert hashing.meta_name(name) == Normalize.normalize_field("fn", name) == Normalize.normalize_field("ln", name)
    assert hashing.google_name(name) == Formatter().process_given_name(name, Encoding.HEX)
    assert hashing.google_name(name) == Formatter().process_family_name(name, Encoding.HEX)


@pytest.mark.parametrize("city", CITIES)
def test_location_hashes_match_meta(city) -> None:
    assert hashing.meta_location(city) == Normalize.normalize_field("ct", city) == Normalize.normalize_field("st", city)


@pytest.mark.parametrize("zp", ZIPS)
def test_zip_hashes_match_meta(zp) -> None:
    assert hashing.meta_zip(zp) == Normalize.normalize_field("zp", zp)


@pytest.mark.parametrize("country", COUNTRIES)
def test_country_hashes_match_meta(country) -> None:
    assert hashing.meta_country(country) == Normalize.normalize_field("country", country)


def test_already_hashed_values_pass_through_for_meta() -> None:
    digest = hashing.sha256("someone@example.com")
    assert hashing.meta_email(digest.upper()) == digest == Normalize.normalize_field("em", digest.upper())


@pytest.mark.parametrize("bad", ["not-an-email", "two@@example.com", "a b@example.com"])
def test_bad_emails_are_refused_like_the_sdks(bad) -> None:
    with pytest.raises(ValueError) as ours:
        hashing.google_email(bad)
    with pytest.raises(ValueError):
        Formatter().process_email_address(bad, Encoding.HEX)
    assert bad not in str(ours.value)  # the message names the field, never the value


def test_unreadable_phone_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as err:
        hashing.meta_phone("12", "US")
    assert "12" not in str(err.value) and "phone" in str(err.value)
