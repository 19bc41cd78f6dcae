"""The two Flower components a study's app bundle names (imports Flower; see mpclr.deploy.appdir)."""

from .hospital import make_client_app
from .server_app import make_server_app

server_app = make_server_app()
client_app = make_client_app()
