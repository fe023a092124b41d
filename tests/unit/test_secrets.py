"""Finding every password in a URL, and refusing URLs that would show a piece of one."""

from __future__ import annotations

import pytest

from migration_job.settings.load import UrlError, load_settings, normalize_url, url_secrets

# Two halves that no message could contain by chance: neither may ever be printed.
HALVES = ("Gx4Kq", "Vb8Tz")


def url_with(separator: str, template: str = "postgresql://user:{}@db.example.com/app") -> str:
    """A URL whose password is the two halves joined by `separator`, unencoded."""
    return template.format(separator.join(HALVES))


class TestUnencodedPasswordCharacters:
    """A '/', '#' or '?' in the password ends the URL's authority early: exit 2, no piece shown."""

    @pytest.mark.parametrize(("separator", "encoding"), [("/", "%2F"), ("#", "%23"), ("?", "%3F")])
    def test_refused_without_showing_the_password(self, separator: str, encoding: str) -> None:
        with pytest.raises(UrlError) as caught:
            normalize_url(url_with(separator))
        message = str(caught.value)
        assert caught.value.exit_code == 2
        assert "URL-encode" in message
        assert encoding in message
        assert not [half for half in HALVES if half in message]

    @pytest.mark.parametrize("template", [
        "postgresql://user:1234{}@db/app",           # looks like host:port until the '/'
        "postgresql://user:{}@db:5432/app?sslmode=require",
        "postgresql://user:p@ss{}@db/app",           # an unencoded '@' as well
        "postgresql://:{}@db/app",                   # no user name
        "postgresql://user:{}@db/app?application_name=me@host",
    ])
    def test_refused_in_every_shape(self, template: str) -> None:
        with pytest.raises(UrlError, match="URL-encode") as caught:
            normalize_url(url_with("/", template))
        assert not [half for half in HALVES if half in str(caught.value)]

    @pytest.mark.parametrize("separator", ["/", "#", "?"])
    def test_the_error_carries_the_raw_password(self, separator: str) -> None:
        with pytest.raises(UrlError) as caught:
            normalize_url(url_with(separator))
        assert separator.join(HALVES) in caught.value.secrets

    def test_secrets_hold_the_text_up_to_the_last_at_before_the_host(self) -> None:
        secrets = url_secrets("postgresql://user:p@ss/Gx4Kq@db/app")
        assert "p@ss/Gx4Kq" in secrets

    @pytest.mark.parametrize("separator", [
        "\uff03",  # fullwidth '#': urlsplit's own error, naming the netloc
        "?a=",      # reads as a query, so the password's start is taken for the port
    ])
    def test_malformed_parts_are_not_quoted(self, separator: str) -> None:
        with pytest.raises(UrlError, match="malformed") as caught:
            normalize_url(url_with(separator))
        assert not [half for half in HALVES if half in str(caught.value)]


class TestUrlsThatStayValid:
    """An '@' in a query parameter's value, or an encoded password, is not a mistake."""

    @pytest.mark.parametrize("url", [
        "postgresql://user:Gx4Kq%2FVb8Tz@db/app",
        "postgresql://user:Gx4Kq@db:5432/app?application_name=me@host",
        "postgresql://db:5432/app?user=me@corp&sslmode=require",
        "postgresql:///app?host=/var/run/postgresql&user=me@corp",
        "postgresql://me@corp:Gx4Kq@db/app",
    ])
    def test_accepted(self, url: str) -> None:
        assert normalize_url(url)[0].startswith("postgresql+psycopg2://")

    def test_encoded_password_is_masked_raw_and_decoded(self) -> None:
        _, secrets = normalize_url("postgresql://user:Gx4Kq%2FVb8Tz@db/app")
        assert {"Gx4Kq%2FVb8Tz", "Gx4Kq/Vb8Tz"} <= set(secrets)

    def test_unencoded_at_in_the_user_name(self) -> None:
        assert "Gx4Kq" in normalize_url("postgresql://me@corp:Gx4Kq@db/app")[1]


class TestQueryPasswords:
    """libpq takes `?password=` (and `sslpassword=`): their values are secrets too."""

    @pytest.mark.parametrize("parameter", ["password", "sslpassword", "pass%77ord"])
    def test_masked_raw_and_decoded(self, parameter: str) -> None:
        url = f"postgresql://user@db/app?sslmode=require&{parameter}=Gx4Kq%2FVb8Tz&x=1"
        settings = load_settings({}, {"DATABASE_URL": url, "MIGRATE_TERMINATION_LOG": ""})
        assert {"Gx4Kq%2FVb8Tz", "Gx4Kq/Vb8Tz"} <= set(settings.secrets)

    def test_other_parameters_are_not_secrets(self) -> None:
        assert url_secrets("postgresql://user@db/app?sslmode=require") == ()
