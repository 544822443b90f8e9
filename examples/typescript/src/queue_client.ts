/**
 * A Madoguchi queue client on Node 20 with @grpc/grpc-js: what an
 * integrator's kiosk or app does. Its stubs are generated from the
 * repository's proto/ by `npm run build` (ts-proto through buf; nothing
 * generated is committed). Against a running server it:
 *
 * 1. issues a ticket with a bearer token,
 * 2. follows WatchOffice until it sees that ticket, then disconnects,
 * 3. issues two more tickets while disconnected and resumes with
 *    after_sequence, checking that no event is missed or repeated,
 * 4. reads the office status,
 * 5. handles a PERMISSION_DENIED (CallNext is for counter staff) and an
 *    INVALID_ARGUMENT, decoding google.rpc.Status from the
 *    grpc-status-details-bin trailer and printing its ErrorInfo reason and
 *    BadRequest field violations.
 *
 * Usage (scripts/examples-setup.sh runs `npm ci`):
 *
 *     cd examples/typescript && npm run build
 *     node dist/src/queue_client.js --server 127.0.0.1:50051 --token "$INTEGRATOR_TOKEN"
 *
 * Exits 1 with a line starting "FAILED:" when the server does not behave
 * as documented.
 */

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { credentials, Metadata, ServiceError, status as Code } from "@grpc/grpc-js";
import {
  EventType,
  eventTypeToJSON,
  OfficeEvent,
  QueueServiceClient,
  Ticket,
} from "../gen/madoguchi/queue/v1/queue";
import { Status } from "../gen/google/rpc/status";
import { BadRequest, ErrorInfo } from "../gen/google/rpc/error_details";

/** How long one call, or the wait for one event, may take. */
const DEADLINE_MS = 30_000;

class ExampleFailed extends Error {}

const { values: args } = parseArgs({
  options: {
    server: { type: "string", default: process.env.MADOGUCHI_SERVER ?? "127.0.0.1:50051" },
    token: { type: "string", default: process.env.MADOGUCHI_TOKEN },
    office: { type: "string", default: "municipalities/032034/offices/main" },
    category: { type: "string", default: "certificates" },
  },
});

const client = new QueueServiceClient(args.server!, credentials.createInsecure());

/** The bearer token, sent on every call. */
function auth(): Metadata {
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${args.token}`);
  return metadata;
}

function deadline() {
  return { deadline: Date.now() + DEADLINE_MS };
}

/** A unary call of the generated client as a promise. */
function unary<Req, Res>(
  method: (
    request: Req,
    metadata: Metadata,
    options: object,
    callback: (error: ServiceError | null, response: Res) => void,
  ) => unknown,
  request: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, auth(), deadline(), (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** The ErrorInfo reason and BadRequest field violations of a failed call,
 * from google.rpc.Status in the grpc-status-details-bin trailer. */
function describeError(error: ServiceError): { reason?: string; violations: string[] } {
  const violations: string[] = [];
  let reason: string | undefined;
  const [raw] = error.metadata.get("grpc-status-details-bin");
  if (!(raw instanceof Buffer)) {
    return { violations };
  }
  for (const detail of Status.decode(raw).details) {
    if (detail.typeUrl.endsWith("/google.rpc.ErrorInfo")) {
      reason = ErrorInfo.decode(detail.value).reason;
    } else if (detail.typeUrl.endsWith("/google.rpc.BadRequest")) {
      for (const v of BadRequest.decode(detail.value).fieldViolations) {
        violations.push(`${v.field}: ${v.description}`);
      }
    }
  }
  return { reason, violations };
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && "code" in error && "metadata" in error;
}

/** WatchOffice from afterSequence until an event of each ticket in `until`
 * arrived; then the stream is cancelled (a disconnect). */
function follow(afterSequence: number, until: string[]): Promise<OfficeEvent[]> {
  const waiting = new Set(until);
  const events: OfficeEvent[] = [];
  const stream = client.watchOffice({ office: args.office!, afterSequence }, auth(), deadline());
  return new Promise((resolve, reject) => {
    stream.on("data", (response) => {
      if (!response.event) return;
      events.push(response.event);
      waiting.delete(response.event.ticket?.name ?? "");
      if (waiting.size === 0) {
        stream.cancel();
        resolve(events);
      }
    });
    stream.on("error", (error: ServiceError) => {
      if (waiting.size > 0) reject(error);
    });
    stream.on("end", () => {
      if (waiting.size > 0) reject(new ExampleFailed(`WatchOffice ended before events of ${[...waiting]}`));
    });
  });
}

function eventLine(event: OfficeEvent): string {
  const kind = eventTypeToJSON(event.type as EventType).replace(/^EVENT_TYPE_/, "");
  return `${event.sequence} ${kind} ${event.ticket?.displayNumber}`;
}

async function run(): Promise<void> {
  const office = args.office!;
  const category = `${office}/categories/${args.category}`;
  const issue = (categoryName = category) =>
    unary<Parameters<typeof client.issueTicket>[0], Ticket>(client.issueTicket, {
      parent: office,
      category: categoryName,
      priority: false,
      requestId: randomUUID(),
    });

  const first = await issue();
  console.log(`issued ${first.displayNumber} (${first.name})`);

  const seen = await follow(0, [first.name]);
  for (const event of seen) console.log(`watch: ${eventLine(event)}`);
  const last = seen[seen.length - 1].sequence;
  console.log(`disconnected after sequence ${last}`);

  const missed = [await issue(), await issue()];
  for (const ticket of missed) console.log(`issued ${ticket.displayNumber} while disconnected`);

  const resumed = await follow(last, missed.map((t) => t.name));
  for (const event of resumed) console.log(`resumed: ${eventLine(event)}`);
  const sequences = resumed.map((e) => e.sequence);
  if (sequences.some((s, i) => s !== last + 1 + i)) {
    throw new ExampleFailed(`resumed after ${last} with sequences ${sequences}`);
  }
  console.log(
    `resume ok: sequences ${sequences[0]}..${sequences[sequences.length - 1]}, none missed or repeated`,
  );

  const status = await unary(client.getOfficeStatus, { name: office });
  for (const c of status.categories) {
    console.log(`status: ${c.prefix} ${c.displayNameEn}: ${c.waiting} waiting`);
  }

  try {
    await unary(client.callNext, {
      counter: status.counters[0].name,
      categories: [],
      requestId: randomUUID(),
    });
    throw new ExampleFailed("CallNext succeeded with a token that may not call");
  } catch (error) {
    if (!isServiceError(error) || error.code !== Code.PERMISSION_DENIED) throw error;
    const { reason } = describeError(error);
    console.log(`permission denied: CallNext (${reason}): ${error.details}`);
  }

  try {
    await issue(`${office}/kategorien/nonsense`);
    throw new ExampleFailed("IssueTicket accepted a malformed category");
  } catch (error) {
    if (!isServiceError(error) || error.code !== Code.INVALID_ARGUMENT) throw error;
    const { violations } = describeError(error);
    if (violations.length === 0) {
      throw new ExampleFailed("INVALID_ARGUMENT without BadRequest field violations");
    }
    for (const v of violations) console.log(`invalid argument: ${v}`);
  }
  console.log("done");
}

if (!args.token) {
  console.error("--token or MADOGUCHI_TOKEN is required");
  process.exit(2);
}
run()
  .then(() => client.close())
  .catch((error: Error) => {
    console.log(`FAILED: ${error.message}`);
    client.close();
    process.exitCode = 1;
  });
