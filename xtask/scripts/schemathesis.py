"""Runs schemathesis against the OpenAPI document of a live missive-server.

Usage: python schemathesis.py TARGET_DIR MAX_EXAMPLES

Starts the debug server of TARGET_DIR on a free port with open registration and no rate
limits, registers one account with the `missive` binary (so that authenticated routes are
exercised with a real device token), then generates requests for every documented operation
and fails on any 5xx answer or any answer that does not match the document (status code,
content type, headers, body schema).
"""

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    target, examples = sys.argv[1], sys.argv[2]
    server_bin = os.path.join(target, "debug", "missive-server")
    cli_bin = os.path.join(target, "debug", "missive")
    venv_bin = os.path.dirname(sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "server")
        subprocess.run([server_bin, "--data", data, "init", "--domain", "st.test"],
                       check=True, stdout=subprocess.DEVNULL)
        config = os.path.join(data, "missive.toml")
        with open(config) as f:
            text = f.read()
        text = (text.replace("open_registration = false", "open_registration = true")
                .replace("rate_limit_ip_per_second = 100", "rate_limit_ip_per_second = 0")
                .replace("rate_limit_device_per_second = 50", "rate_limit_device_per_second = 0"))
        with open(config, "w") as f:
            f.write(text)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, MISSIVE_LOG="error")
        server = subprocess.Popen([server_bin, "--data", data, "serve", "--listen", f"127.0.0.1:{port}"],
                                  env=env, stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(url + "/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            home = os.path.join(tmp, "alice")
            subprocess.run([cli_bin, "--home", home, "register", "--server", url, "alice@st.test"],
                           check=True, stdout=subprocess.DEVNULL)
            db = sqlite3.connect(os.path.join(home, "account.db"))
            token = bytes(db.execute("SELECT value FROM settings WHERE key = 'token'").fetchone()[0]).decode()
            db.close()
            checks = ",".join([
                "not_a_server_error",
                "status_code_conformance",
                "content_type_conformance",
                "response_headers_conformance",
                "response_schema_conformance",
            ])
            result = subprocess.run([
                os.path.join(venv_bin, "schemathesis"), "run", url + "/openapi.json",
                "-H", f"Authorization: Bearer {token}",
                "--checks", checks,
                "--max-examples", examples,
                "--seed", "20261126",
                "--no-color",
            ], cwd=tmp)  # its cache directory goes with the temporary one
        finally:
            server.kill()
            server.wait()
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()
