"""RFC 3263 through `callscript serve`: a call to another domain follows NAPTR/SRV records served by
a real DNS server (dnsmasq) and fails over to the next SRV target when the first answers 503."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.harness import Peers, free_port, start_server
from tests.transport.dns_server import running_dnsmasq

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def test_call_to_another_domain_fails_over_to_the_next_srv_target_on_503(tmp_path: Path) -> None:
    """RFC 3263 §4.3: after a 503 from the first SRV target the proxy tries the next one."""
    first, second = free_port(), free_port()
    records = [
        "--naptr-record=far.test,10,10,s,SIP+D2U,,_sip._udp.far.test",
        f"--srv-host=_sip._udp.far.test,one.far.test,{first},10,0",
        f"--srv-host=_sip._udp.far.test,two.far.test,{second},20,0",
        "--host-record=one.far.test,127.0.0.1",
        "--host-record=two.far.test,127.0.0.1",
    ]
    (tmp_path / "dns").mkdir()
    with running_dnsmasq(tmp_path / "dns", records) as dns:
        host, port = dns.address
        server = start_server(tmp_path, tail=f'[dns]\nnameservers = ["{host}:{port}"]')
        peers = Peers(tmp_path)
        try:
            busy = peers.sipp("uas_503.xml", local_port=first)
            answering = peers.sipp("uas.xml", local_port=second)
            caller = peers.sipp(
                "uac.xml",
                local_port=free_port(),
                remote=f"127.0.0.1:{server.port}",
                service="carol",
                domain="far.test",
            )
            assert caller.result() == 0, caller.errors() + server.log_text()[-3000:]
            assert busy.result() == 0, busy.errors()
            assert answering.result() == 0, answering.errors()
        finally:
            peers.close()
            assert server.stop() == 0
