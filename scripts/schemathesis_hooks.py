"""schemathesis hooks for scripts/api-contract.py (loaded through SCHEMATHESIS_HOOKS).

A run must not delete the credential it runs with: every later request would then be refused with
401 (documented, so nothing would fail, but nothing more would be tested). schemathesis finds the
ids of that credential in the answers (GET /api-keys, GET /me/devices) and reuses them as path
parameters in every phase, the stateful one included. Before each call, such an id is replaced by
a spare one that the script created for the purpose (a second API key, the member's second
device), so the operation is still exercised on a real object.
"""

import os

import schemathesis

# operation → (the id to protect, the spare id to act on instead), from the script's environment.
PROTECTED = {
    "DELETE /api/v1/api-keys/{id}": ("CONTRACT_OWN_KEY_ID", "CONTRACT_SPARE_KEY_ID"),
    "DELETE /api/v1/me/devices/{id}": ("CONTRACT_OWN_DEVICE_ID", "CONTRACT_SPARE_DEVICE_ID"),
}


@schemathesis.hook
def before_call(context, case, kwargs):
    names = PROTECTED.get(case.operation.label)
    if names is None or not case.path_parameters:
        return
    own, spare = (os.environ.get(name) for name in names)
    if own and spare and case.path_parameters.get("id") == own:
        case.path_parameters["id"] = spare
