"""The three roles of a study: data providers (hospitals), the server, the researcher."""

from .data_provider import DataProvider
from .evaluator import Ciphertext
from .node import Node, Session
from .researcher import Researcher
from .server import Server

__all__ = ["DataProvider", "Node", "Researcher", "Server", "Session", "Ciphertext"]
