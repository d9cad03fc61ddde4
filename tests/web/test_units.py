"""The [web] settings, rate limits, metrics rendering, and the API over TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from callscript.errors import ConfigError
from callscript.metrics import Family, Metrics
from callscript.web.config import WebConfig, parse_web_config
from callscript.web.limits import RateLimiter
from tests.transport.certs import make_self_signed
from tests.web.harness import Site, run


def test_web_settings_parse_from_toml_and_refuse_unknown_keys_and_bad_values() -> None:
    config = parse_web_config({"listen": "[::1]:0", "uploads_per_minute": 5, "session_ttl": 60})
    assert config.address() == ("::1", 0)
    assert config.uploads_per_minute == 5 and config.session_ttl == 60.0
    assert WebConfig().address() == ("127.0.0.1", 8080)
    with pytest.raises(ConfigError, match=r"unknown setting .web\.port."):
        parse_web_config({"port": 80})
    with pytest.raises(ConfigError, match=r"web\.enabled"):
        parse_web_config({"enabled": "yes"})
    with pytest.raises(ConfigError, match=r"web\.max_upload"):
        parse_web_config({"max_upload": True})
    with pytest.raises(ConfigError, match=r"bad web\.listen"):
        WebConfig(listen="8080")
    with pytest.raises(ConfigError, match="go together"):
        WebConfig(tls_cert="cert.pem")


def test_rate_limiter_refills_with_the_time_passed_in() -> None:
    limiter = RateLimiter()
    assert [limiter.take("upload", "alice", 2, now=0.0) for _ in range(3)] == [0.0, 0.0, 30.0]
    assert limiter.take("upload", "bob", 2, now=0.0) == 0.0
    assert limiter.wait("upload", "alice", 2, now=29.0) == 1.0
    assert limiter.take("upload", "alice", 2, now=30.0) == 0.0
    assert limiter.wait("login", "nobody", 2, now=0.0) == 0.0


def test_metrics_render_counters_gauges_histograms_and_refuse_wrong_labels() -> None:
    metrics = Metrics(
        (
            Family("requests_total", "counter", "Requests", ("method",)),
            Family("live", "gauge", "Live"),
            Family("latency_seconds", "histogram", "Latency", (), (0.1, 1.0)),
        )
    )
    metrics.inc("requests_total", method='IN"VITE\n')
    metrics.inc("requests_total", 2, method="BYE")
    metrics.set("live", 3)
    for value in (0.05, 0.5, 5.0):
        metrics.observe("latency_seconds", value)
    text = metrics.render()
    assert 'requests_total{method="BYE"} 2\nrequests_total{method="IN\\"VITE\\n"} 1' in text
    assert "# TYPE live gauge\nlive 3\n" in text
    assert 'latency_seconds_bucket{le="0.1"} 1\nlatency_seconds_bucket{le="1"} 2' in text
    assert (
        'latency_seconds_bucket{le="+Inf"} 3\nlatency_seconds_sum 5.55\nlatency_seconds_count 3'
        in text
    )
    assert metrics.value("requests_total", method="BYE") == 2
    with pytest.raises(ValueError, match="takes labels"):
        metrics.inc("requests_total")
    with pytest.raises(ValueError, match="cannot go down"):
        metrics.inc("requests_total", -1, method="BYE")
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.inc("nothing_total")
    with pytest.raises(ValueError, match="is a gauge"):
        metrics.observe("live", 1.0)
    with pytest.raises(ValueError):
        Family("bad name", "counter", "x")


def test_api_over_tls_accepts_basic_credentials(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)

    async def scenario(site: Site) -> None:
        assert site.url.startswith("https://127.0.0.1:")
        me = await site.call("GET", "/api/me", user="alice")
        assert me.status == 200 and me.body["auth"] == "basic"

    run(tmp_path, scenario, tls_cert=str(cert), tls_key=str(key), basic_on_loopback=False)


def test_script_of_an_account_follows_the_script_file_name_rule() -> None:
    from callscript.web.uploads import script_ref

    ref = script_ref("alice", "Example.COM")
    assert ref is not None
    assert (ref.name, ref.aor, ref.domain) == (
        "example.com/alice.py",
        "sip:alice@example.com",
        "example.com",
    )
    odd = script_ref("a b%c", "example.com")
    assert odd is not None and odd.name == "example.com/a%20b%25c.py"
