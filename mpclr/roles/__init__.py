"""The three roles of a study: data providers (hospitals), the server, the researcher."""

from .evaluator import Ciphertext
from .hospital import Hospital
from .node import Node, Session
from .researcher import Researcher
from .server import Server

__all__ = ["Hospital", "Node", "Researcher", "Server", "Session", "Ciphertext"]
