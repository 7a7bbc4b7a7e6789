"""What the seed scripts share: the environment they are given, the Entra ID
credential (`ClientSecretCredential` at its defaults), and how a step or an
expected refusal is reported (one JSON object a line; the first failure ends
the run, naming its step). Nothing here names the simulator.
"""

import json
import os
import sys
import traceback

from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential

TENANT = os.environ["AZURE_TENANT_ID"]
CLIENT = os.environ["AZURE_CLIENT_ID"]
SECRET = os.environ["AZURE_CLIENT_SECRET"]
SUB = os.environ["SEED_SUBSCRIPTION"]
RG = os.environ["SEED_RESOURCE_GROUP"]
VAULT = os.environ["SEED_VAULT"]
ACCOUNT = os.environ["SEED_ACCOUNT"]


def step(name, fn):
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - report any failure with its step
        print(json.dumps({"step": name, "ok": False, "error": f"{type(e).__name__}: {e}"}))
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps({"step": name, "ok": True, **(out or {})}), flush=True)
    return out


def refused(fn):
    """Azure's answer to a call it refuses: status, code and message."""
    try:
        fn()
    except HttpResponseError as e:
        return {"status": e.status_code, "code": e.error.code if e.error else None, "message": e.message}
    raise AssertionError("Azure refuses this, and it was accepted")


cred = ClientSecretCredential(TENANT, CLIENT, SECRET)
