"""Resolve the team server's documented name, mlflow.example.com, to this machine's loopback.

The tests' subprocesses put this folder on PYTHONPATH, and Python imports sitecustomize at start-up.
TEST_HOSTNAMES="mlflow.example.com=127.0.0.1" plays the part of the team's DNS: the client still connects to
https://mlflow.example.com:<port>, checks the certificate for that name, and sends it as the Host.
"""

import os
import socket

_ADDRESSES = dict(pair.split("=", 1) for pair in os.environ.get("TEST_HOSTNAMES", "").split(",") if pair)

if _ADDRESSES:
    _resolve = socket.getaddrinfo

    def _getaddrinfo(host, *args, **kwargs):
        return _resolve(_ADDRESSES.get(host, host), *args, **kwargs)

    socket.getaddrinfo = _getaddrinfo
