import asyncio

from aiowsgi import Server
from hello import application


async def main() -> None:
    async with Server(application, port=0) as server:
        print(server.url, flush=True)  # e.g. http://127.0.0.1:43121
        await server.serve_forever()  # until server.shutdown() is called or the task is cancelled


asyncio.run(main())
