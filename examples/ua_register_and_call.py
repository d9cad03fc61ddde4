"""Register with digest authentication, call someone, hang up: the library in about 20 lines."""

import asyncio
import os

from callscript import Stack, UserAgent


async def main() -> None:
    async with await Stack.start(listen=["udp:127.0.0.1:0"]) as stack:
        ua = UserAgent(
            stack,
            os.environ.get("SIP_AOR", "sip:alice@example.com"),
            password=os.environ.get("SIP_PASSWORD", "secret"),
            proxy=os.environ.get("SIP_PROXY", "sip:127.0.0.1:5060"),
        )
        await ua.register(expires=300)
        call = await ua.invite(os.environ.get("SIP_CALLEE", "sip:bob@example.com"), timeout=30)
        print("answered by", call.remote_target)
        await asyncio.sleep(1)
        await call.bye()
        await ua.unregister()


asyncio.run(main())
