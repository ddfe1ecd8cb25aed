import asyncio
import os

from aiowsgi import serve
from hello import application


async def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    await serve(application, host="127.0.0.1", port=port)  # runs until cancelled


asyncio.run(main())
