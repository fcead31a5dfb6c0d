"""Drives a Drover agent with python-nomad, the Python client Nomad users
already have: register a job, read it, list its allocations, read one
allocation, and deregister it; create, update and delete a namespace.
Exits non-zero on the first mismatch.

With `acl`, the agent enforces ACLs: the script first checks that an
anonymous client is refused, bootstraps the ACL system, and runs every
check with the bootstrapped management token; then it writes a policy,
creates a client token with it and reads that token back as itself.

Usage: python3 nomad_client.py HOST PORT [acl]
"""

import sys
import time

import nomad


def wait_for(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    acl = len(sys.argv) > 3 and sys.argv[3] == "acl"
    client = nomad.Nomad(host=host, port=port, timeout=10)
    if acl:
        try:
            client.jobs.get_jobs()
        except nomad.api.exceptions.URLNotAuthorizedNomadException:
            pass
        else:
            raise AssertionError("an anonymous client listed jobs")
        bootstrap = client.acl.generate_bootstrap()
        assert bootstrap["Type"] == "management", bootstrap
        client = nomad.Nomad(host=host, port=port, timeout=10, token=bootstrap["SecretID"])

    job = {
        "Job": {
            "ID": "pyjob",
            "Name": "pyjob",
            "Type": "service",
            "Datacenters": ["dc1"],
            "TaskGroups": [
                {
                    "Name": "web",
                    "Count": 1,
                    "Tasks": [
                        {
                            "Name": "sleeper",
                            "Driver": "raw_exec",
                            "Config": {"command": "/bin/sleep", "args": ["300"]},
                            "Resources": {"CPU": 100, "MemoryMB": 32},
                        }
                    ],
                }
            ],
        }
    }
    registered = client.job.register_job("pyjob", job)
    assert registered["EvalID"], registered
    assert registered["JobModifyIndex"] > 0, registered

    read = client.job.get_job("pyjob")
    assert read["ID"] == "pyjob", read
    assert read["TaskGroups"][0]["Tasks"][0]["Driver"] == "raw_exec", read
    assert any(j["ID"] == "pyjob" for j in client.jobs.get_jobs())

    allocs = wait_for(
        "a running allocation",
        lambda: [a for a in client.job.get_allocations("pyjob") if a["ClientStatus"] == "running"],
    )
    alloc = client.allocation.get_allocation(allocs[0]["ID"])
    assert alloc["JobID"] == "pyjob", alloc
    assert alloc["TaskStates"]["sleeper"]["State"] == "running", alloc
    assert alloc["Job"]["ID"] == "pyjob", alloc

    evaluation = client.evaluation.get_evaluation(registered["EvalID"])
    assert evaluation["Status"] == "complete", evaluation

    stopped = client.job.deregister_job("pyjob")
    assert stopped["EvalID"], stopped
    wait_for(
        "the allocation to stop",
        lambda: all(a["ClientStatus"] == "complete" for a in client.job.get_allocations("pyjob")),
    )
    assert client.job.get_job("pyjob")["Stop"] is True

    client.job.deregister_job("pyjob", purge=True)
    try:
        client.job.get_job("pyjob")
    except nomad.api.exceptions.URLNotFoundNomadException:
        pass
    else:
        raise AssertionError("purged job is still readable")

    client.namespace.create_namespace({"Name": "pyns", "Description": "from python"})
    assert any(n["Name"] == "pyns" for n in client.namespaces.get_namespaces()), "namespace listed"
    assert client.namespace.get_namespace("pyns")["Description"] == "from python"
    client.namespace.update_namespace("pyns", {"Name": "pyns", "Description": "changed"})
    assert client.namespace.get_namespace("pyns")["Description"] == "changed"
    client.namespace.delete_namespace("pyns")
    assert [n["Name"] for n in client.namespaces.get_namespaces(prefix="py")] == []
    print("python-nomad: 7 checks passed")
    if acl:
        client.acl.create_policy(
            "readonly", {"Name": "readonly", "Rules": 'namespace "default" { policy = "read" }'}
        )
        assert [p["Name"] for p in client.acl.get_policies()] == ["readonly"]
        token = client.acl.create_token({"Name": "py", "Type": "client", "Policies": ["readonly"]})
        reader = nomad.Nomad(host=host, port=port, timeout=10, token=token["SecretID"])
        assert reader.acl.get_self_token()["AccessorID"] == token["AccessorID"]
        reader.jobs.get_jobs()
        try:
            reader.job.register_job("pyjob", job)
        except nomad.api.exceptions.URLNotAuthorizedNomadException:
            pass
        else:
            raise AssertionError("a read-only token registered a job")
        assert client.acl.delete_token(token["AccessorID"])
        print("python-nomad ACL: 4 checks passed")


if __name__ == "__main__":
    main()
