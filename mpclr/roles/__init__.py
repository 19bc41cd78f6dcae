"""Generic multiparty nodes: hospitals (key holders with their own rows), the server, the researcher. No
learning code: the steps a hospital answers on its rows are registered by other packages (extensions)."""

from .evaluator import Ciphertext
from .hospital import Hospital
from .node import Node, Session
from .researcher import Researcher
from .server import Server

__all__ = ["Hospital", "Node", "Researcher", "Server", "Session", "Ciphertext"]
