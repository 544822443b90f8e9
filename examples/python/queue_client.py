"""A Madoguchi queue client in Python: what an integrator's kiosk or app does.

It generates its stubs from the repository's proto/ with grpcio-tools at
start (nothing generated is committed), then against a running server:

1. lists the served services through reflection v1alpha (grpcio-reflection),
2. issues a ticket with a bearer token,
3. follows WatchOffice until it sees that ticket, then disconnects,
4. issues two more tickets while disconnected and resumes with
   after_sequence, checking that no event is missed or repeated,
5. reads the office status,
6. handles a PERMISSION_DENIED (CallNext is for counter staff) and an
   INVALID_ARGUMENT, decoding google.rpc.Status from the
   grpc-status-details-bin trailer and printing its ErrorInfo reason and
   BadRequest field violations.

Usage (scripts/examples-setup.sh makes the venv):

    .ci/tools/examples-venv/bin/python examples/python/queue_client.py \
        --server 127.0.0.1:50051 --token "$INTEGRATOR_TOKEN"

Exits 1 with a line starting "FAILED:" when the server does not behave as
documented.
"""

import argparse
import importlib
import os
import pathlib
import sys
import tempfile
import uuid

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[2] / "proto"
# How long one call, or the wait for one event, may take.
DEADLINE_SECONDS = 30


class ExampleFailed(Exception):
    """The server did not behave as the API documents."""


def generate_stubs(out_dir):
    """Compiles every .proto under proto/ into out_dir and imports the queue's."""
    files = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *files,
        ]
    )
    if status != 0:
        raise ExampleFailed(f"grpc_tools.protoc exited with {status}")
    sys.path.insert(0, str(out_dir))
    pb = importlib.import_module("madoguchi.queue.v1.queue_pb2")
    grpc_pb = importlib.import_module("madoguchi.queue.v1.queue_pb2_grpc")
    return pb, grpc_pb


def status_details(error):
    """google.rpc.Status from the grpc-status-details-bin trailer, or None."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None


def describe_error(error):
    """The ErrorInfo reason and BadRequest field violations of a failed call."""
    reason = None
    violations = []
    status = status_details(error)
    if status is None:
        return reason, violations
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    return reason, violations


def follow(stub, pb, metadata, office, after_sequence, until):
    """WatchOffice from after_sequence until an event of each ticket in
    `until` arrived; then the stream is cancelled (a disconnect)."""
    call = stub.WatchOffice(
        pb.WatchOfficeRequest(office=office, after_sequence=after_sequence),
        metadata=metadata,
        timeout=DEADLINE_SECONDS,
    )
    waiting = set(until)
    events = []
    try:
        for response in call:
            events.append(response.event)
            waiting.discard(response.event.ticket.name)
            if not waiting:
                break
    finally:
        call.cancel()
    if waiting:
        raise ExampleFailed(f"WatchOffice ended before events of {sorted(waiting)}")
    return events


def event_line(pb, event):
    kind = pb.EventType.Name(event.type).removeprefix("EVENT_TYPE_")
    return f"{event.sequence} {kind} {event.ticket.display_number}"


def run(args):
    channel = grpc.insecure_channel(args.server)
    services = sorted(ProtoReflectionDescriptorDatabase(channel).get_services())
    print("services (reflection v1alpha):", ", ".join(services))

    with tempfile.TemporaryDirectory(prefix="madoguchi-stubs-") as stubs:
        pb, grpc_pb = generate_stubs(stubs)
        stub = grpc_pb.QueueServiceStub(channel)
        metadata = [("authorization", f"Bearer {args.token}")]
        office = args.office
        category = f"{office}/categories/{args.category}"

        def issue(category_name=category):
            return stub.IssueTicket(
                pb.IssueTicketRequest(
                    parent=office, category=category_name, request_id=str(uuid.uuid4())
                ),
                metadata=metadata,
                timeout=DEADLINE_SECONDS,
            )

        first = issue()
        print(f"issued {first.display_number} ({first.name})")

        seen = follow(stub, pb, metadata, office, 0, [first.name])
        for event in seen:
            print("watch:", event_line(pb, event))
        last = seen[-1].sequence
        print(f"disconnected after sequence {last}")

        missed = [issue(), issue()]
        for ticket in missed:
            print(f"issued {ticket.display_number} while disconnected")

        resumed = follow(stub, pb, metadata, office, last, [t.name for t in missed])
        for event in resumed:
            print("resumed:", event_line(pb, event))
        sequences = [e.sequence for e in resumed]
        if sequences != list(range(last + 1, last + 1 + len(sequences))):
            raise ExampleFailed(f"resumed after {last} with sequences {sequences}")
        print(f"resume ok: sequences {sequences[0]}..{sequences[-1]}, none missed or repeated")

        status = stub.GetOfficeStatus(
            pb.GetOfficeStatusRequest(name=office), metadata=metadata, timeout=DEADLINE_SECONDS
        )
        for c in status.categories:
            print(f"status: {c.prefix} {c.display_name_en}: {c.waiting} waiting")

        try:
            stub.CallNext(
                pb.CallNextRequest(counter=status.counters[0].name, request_id=str(uuid.uuid4())),
                metadata=metadata,
                timeout=DEADLINE_SECONDS,
            )
            raise ExampleFailed("CallNext succeeded with a token that may not call")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            reason, _ = describe_error(error)
            print(f"permission denied: CallNext ({reason}): {error.details()}")

        try:
            issue(f"{office}/kategorien/nonsense")
            raise ExampleFailed("IssueTicket accepted a malformed category")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            reason, violations = describe_error(error)
            if not violations:
                raise ExampleFailed("INVALID_ARGUMENT without BadRequest field violations")
            for field, description in violations:
                print(f"invalid argument: {field}: {description}")
    print("done")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("MADOGUCHI_SERVER", "127.0.0.1:50051"))
    parser.add_argument("--token", default=os.environ.get("MADOGUCHI_TOKEN"))
    parser.add_argument("--office", default="municipalities/032034/offices/main")
    parser.add_argument("--category", default="certificates")
    args = parser.parse_args()
    if not args.token:
        parser.error("--token or MADOGUCHI_TOKEN is required")
    try:
        run(args)
    except (ExampleFailed, grpc.RpcError) as error:
        print(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
