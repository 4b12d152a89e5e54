#!/usr/bin/env python3
"""The API contract: schemathesis against the served /openapi.json.

Builds the server (the debug binary, as the tests do), starts it on a free 127.0.0.1 port on a
fresh SQLite database in a temporary directory with the `file` SMS provider, creates two
enterprises with the CLI, signs a member of the second in through the JSON login (the code read
from the SMS outbox file), and runs schemathesis three times against the document the server
serves: with the first enterprise's API key, with the member's access token, and with no
credential. Every check (`--checks all`) and every phase (examples, coverage, fuzzing and the
stateful phase) runs with a fixed seed and a bounded number of examples, so a run is repeatable
and takes a few minutes on two cores. Exits non-zero when any run finds a failure.

    python3 scripts/api-contract.py                 # build, serve, run all three
    python3 scripts/api-contract.py --only member   # one run (admin, member or anonymous)
    python3 scripts/api-contract.py --keep -- --report har   # keep the database, log and a HAR file
    WORKGATE_BIN=target/release/workgate python3 scripts/api-contract.py

Settings for schemathesis itself (and the reason for each) are in scripts/schemathesis.toml.
"""

import argparse
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "scripts", "schemathesis.toml")
HOOKS = os.path.join(ROOT, "scripts", "schemathesis_hooks.py")
# On PATH, or where pip put this Python's scripts (not always on PATH).
SCHEMATHESIS = shutil.which("schemathesis") or shutil.which(
    "schemathesis", path=sysconfig.get_path("scripts")
)
# One schemathesis run takes well under a minute; this bounds a run that stalls.
RUN_TIMEOUT = 600
# The admin run uses enterprise A's key; the member belongs to enterprise B, so that nothing the
# admin run does (policy changes, member writes, key deletions) reaches the member's session.
OWNER_A = "13800138000"
OWNER_B = "13700137000"
MEMBER_B = "13900139000"


def log(message):
    print(f"== {message}", flush=True)


def build_binary():
    """The workgate binary: $WORKGATE_BIN, or `cargo build -p workgate`'s."""
    if os.environ.get("WORKGATE_BIN"):
        return os.environ["WORKGATE_BIN"]
    log("cargo build -p workgate --bin workgate")
    out = subprocess.run(
        ["cargo", "build", "-p", "workgate", "--bin", "workgate", "--message-format=json-render-diagnostics"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            if message["target"]["name"] == "workgate":
                return message["executable"]
    sys.exit("cargo built no workgate binary")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Refused(Exception):
    def __init__(self, method, path, status, body):
        super().__init__(f"{method} {path} answered {status}: {body}")
        self.status = status
        self.body = body


def request(base, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raise Refused(method, path, e.code, e.read().decode(errors="replace")) from None


def wait_ready(base, server):
    for _ in range(300):
        if server.poll() is not None:
            sys.exit(f"the server exited with status {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the server was not ready within 30 s")


def sms_bodies(outbox, phone):
    if not os.path.exists(outbox):
        return []
    with open(outbox, encoding="utf-8") as f:
        messages = [json.loads(line) for line in f if line.strip()]
    return [m["body"] for m in messages if m.get("to") == phone]


def count_sms(outbox, phone):
    return len(sms_bodies(outbox, phone))


def code_for(outbox, phone, seen):
    """The code of the first SMS to `phone` after the `seen` ones, in the `file` provider's
    outbox (waits up to 10 s for the sender to deliver it)."""
    for _ in range(200):
        bodies = sms_bodies(outbox, phone)
        if len(bodies) > seen:
            words = "".join(c if c.isdigit() else " " for c in bodies[seen]).split()
            return next(w for w in words if len(w) == 6)
        time.sleep(0.05)
    sys.exit(f"no new SMS to {phone} in {outbox}")


def create_enterprise(binary, env, name, owner_phone):
    out = subprocess.run(
        [binary, "enterprise", "create", "--name", name, "--owner-name", f"{name} Owner",
         "--owner-phone", owner_phone, "--region", "CN", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    ).stdout
    return json.loads(out)


def sign_in(base, outbox, phone):
    """Signs `phone` in with the JSON login (a new device each time); the `done` step's answer."""
    sent = count_sms(outbox, "+86" + phone)
    for _ in range(10):
        try:
            started = request(base, "POST", "/api/v1/login/start", {"phone": phone})
            break
        except Refused as e:
            if e.status != 429:
                raise
            time.sleep(json.loads(e.body).get("retry_after", 1))
    step = request(base, "POST", f"/api/v1/login/{started['login_id']}/code", {"code": code_for(outbox, "+86" + phone, sent)})
    if step.get("next") != "done":
        sys.exit(f"the login of {phone} did not finish: {step}")
    return step["session"]


def run_config(workdir, name, operations):
    """scripts/schemathesis.toml with this run's own `[[operations]]` appended."""
    with open(CONFIG, encoding="utf-8") as f:
        text = f.read()
    for op in operations:
        text += "\n[[operations]]\n" + "".join(f"{k} = {v}\n" for k, v in op.items())
    path = os.path.join(workdir, f"schemathesis-{name}.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def toml_str(value):
    return json.dumps(value)


def schemathesis(base, name, token, operations, run_env, args, workdir):
    """One schemathesis run; True when it found no failure."""
    command = [
        SCHEMATHESIS, "--config-file", run_config(workdir, name, operations), "run", f"{base}/openapi.json",
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(args.max_examples),
        "--seed", str(args.seed),
        "--workers", "1",
        "--generation-database", "none",
        "--no-color",
        # A request that hangs is a failure, not a stalled run.
        "--request-timeout", "10",
    ]
    command += args.extra
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    log(f"schemathesis, {name}: {' '.join(c if 'Bearer' not in c else 'Authorization: Bearer …' for c in command)}")
    env = dict(os.environ, SCHEMATHESIS_HOOKS=HOOKS, **run_env)
    try:
        return subprocess.run(command, cwd=workdir, env=env, timeout=RUN_TIMEOUT).returncode == 0
    except subprocess.TimeoutExpired:
        log(f"schemathesis, {name}: still running after {RUN_TIMEOUT} s, stopped")
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["admin", "member", "anonymous"], action="append")
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("CONTRACT_MAX_EXAMPLES", "10")))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (database, log)")
    parser.add_argument("extra", nargs="*", help="after --: more arguments for `schemathesis run` (e.g. --report har)")
    args = parser.parse_args()
    if SCHEMATHESIS is None:
        sys.exit("schemathesis is not installed: python3 -m pip install schemathesis")
    # A SIGTERM (a CI job cancelled) stops the server and removes the directory like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    binary = build_binary()
    tmp = tempfile.mkdtemp(prefix="workgate-contract-")
    servers = []
    ok = False
    try:
        ok = contract(binary, tmp, args, servers)
    finally:
        for server in servers:
            ok = stop(server, tmp) and ok
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


def contract(binary, tmp, args, servers):
    """Sets the server up, runs schemathesis; True when every run passed."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    outbox = os.path.join(tmp, "sms.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKGATE_")}
    env.update({
        "WORKGATE_DATABASE": f"sqlite://{tmp}/workgate.db",
        "WORKGATE_KEY_FILE": os.path.join(tmp, "workgate.key"),
        # The member signs in twice in a row: no cooldown between two codes to one number.
        # Every other setting is the default.
        "WORKGATE_CONFIG": os.path.join(tmp, "workgate.toml"),
        "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
    })
    with open(env["WORKGATE_CONFIG"], "w", encoding="utf-8") as f:
        f.write("[login]\nresend_cooldown_secs = 0\n")

    log(f"a fresh database in {tmp}")
    a = create_enterprise(binary, env, "Contract A", OWNER_A)
    b = create_enterprise(binary, env, "Contract B", OWNER_B)

    with open(os.path.join(tmp, "server.log"), "w") as server_log:
        server = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--sms-provider", "file", "--sms-outbox-file", outbox],
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
    servers.append(server)
    wait_ready(base, server)
    log(f"serving at {base}")

    # A plain member of enterprise B, signed in twice with the JSON login (two devices).
    request(base, "POST", "/api/v1/members", {"name": "Contract Member", "phone": MEMBER_B, "invite": False},
            token=b["api_key"])
    member = sign_in(base, outbox, MEMBER_B)
    spare = sign_in(base, outbox, MEMBER_B)
    # A second key of enterprise A, for the admin run to delete.
    spare_key = request(base, "POST", "/api/v1/api-keys", {"name": "Contract spare"}, token=a["api_key"])

    # A run must not end the credential it runs with, or every later request is refused with
    # 401 (documented, so nothing fails, but nothing more is tested): logging out ends the
    # member's session, signing its device out too, and an API key may delete itself.
    # scripts/schemathesis_hooks.py points the deletions at the spare device and key when they
    # name the run's own; logging out uses the spare session's token.
    runs = [
        ("member", member["access_token"], [
            {"include-name": toml_str("POST /api/v1/me/logout"),
             "headers": "{ Authorization = %s }" % toml_str("Bearer " + spare["access_token"])},
        ], {"CONTRACT_OWN_DEVICE_ID": member["device_id"], "CONTRACT_SPARE_DEVICE_ID": spare["device_id"]}),
        ("anonymous", None, [], {}),
        ("admin", a["api_key"], [], {"CONTRACT_OWN_KEY_ID": a["api_key_id"], "CONTRACT_SPARE_KEY_ID": spare_key["id"]}),
    ]
    results = {}
    for name, token, operations, run_env in runs:
        if args.only and name not in args.only:
            continue
        results[name] = schemathesis(base, name, token, operations, run_env, args, tmp)
        if server.poll() is not None:
            print(f"the server exited with status {server.returncode} during the {name} run", flush=True)
            results[name] = False
            break
    for name, passed in results.items():
        log(f"{name}: {'passed' if passed else 'FAILED'}")
    return bool(results) and all(results.values())


def stop(server, tmp):
    """Stops the server (SIGTERM, as an operator would); False when it logged an error."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=45)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    with open(os.path.join(tmp, "server.log"), encoding="utf-8", errors="replace") as f:
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in f]
    errors = [line for line in lines if " ERROR " in line or "panicked" in line]
    if errors:
        log("the server logged errors:")
        sys.stdout.writelines(errors[-40:])
    return not errors


if __name__ == "__main__":
    main()
