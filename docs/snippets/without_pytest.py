import urllib.request

from aiowsgi.testing import live_server
from hello import application

with live_server(application) as url, urllib.request.urlopen(url + "/") as response:
    print(response.status, response.read().decode(), end="")
