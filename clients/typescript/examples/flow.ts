/**
 * The app's whole flow through the client, as a phone goes through it: who am I, a group,
 * start a session, upload its chunks, end it, follow its processing, see the speakers, claim
 * one as me and one as a guest, read the group's leaderboard and the evidence behind my counts.
 *
 *   npm ci && npm run build
 *   LAHSTATS_URL=http://127.0.0.1:8000 LAHSTATS_TOKEN=$(lahstats token $USER_UUID) \
 *     node dist/examples/flow.js --speakers 2 ../../samples/chunk_*
 *
 * Progress goes to stderr; what the API answered goes to stdout as one JSON object.
 */
import { readFile } from "node:fs/promises";
import { basename, extname } from "node:path";
import { parseArgs } from "node:util";

import { ApiError, LahStats, ok, type SessionStatusPublic, type SpeakerPublic } from "../src/index.js";

const CONTENT_TYPES: Record<string, string> = {
  ".m4a": "audio/mp4",
  ".mp3": "audio/mpeg",
  ".ogg": "audio/ogg",
  ".wav": "audio/wav",
  ".webm": "audio/webm",
};

const { values, positionals: chunkPaths } = parseArgs({
  options: { speakers: { type: "string" }, group: { type: "string", default: "Kopi kakis" } },
  allowPositionals: true,
});
const lahstats = new LahStats({ baseUrl: need("LAHSTATS_URL"), token: need("LAHSTATS_TOKEN") });

// 1. Who am I, and a group to record in (any member may add others: POST /groups/{id}/members).
const me = ok(await lahstats.api.GET("/me"));
const group = ok(await lahstats.api.POST("/groups", { body: { name: values.group } }));

// 2. Start, upload each chunk (~30 s) as the phone records it, end.
const started = ok(await lahstats.api.POST("/sessions/start", { body: { group_id: group.id } }));
const session = { path: { session_id: started.session_id } };
const uploads = [];
for (const [number, path] of chunkPaths.entries()) {
  const audio = new Blob([new Uint8Array(await readFile(path))], { type: CONTENT_TYPES[extname(path)] ?? "" });
  uploads.push(await lahstats.uploadChunk(started.session_id, number, audio, basename(path)));
}
const numSpeakers = values.speakers === undefined ? undefined : Number(values.speakers);
const ended = ok(
  await lahstats.api.POST("/sessions/{session_id}/end", {
    params: session,
    body: { num_speakers: numSpeakers },
  }),
);

// 3. Follow the processing: an event whenever status, stage or progress changes.
const events: SessionStatusPublic[] = [];
for await (const status of lahstats.sessionEvents(started.session_id)) {
  events.push(status);
  console.error(`${status.status} ${status.progress}% ${status.stage ?? ""}`);
}
const last = events.at(-1);
if (last?.status !== "ready_for_claiming") {
  throw new Error(`nothing to claim: ${last?.status} ${last?.error_message ?? last?.warnings}`);
}

// 4. The voices found, each with a sample clip to play and its counts.
const { speakers } = ok(await lahstats.api.GET("/sessions/{session_id}/speakers", { params: session }));
const sample = await fetch(lahstats.mediaUrl(speakers[0]?.sample_audio_url ?? "/missing"));

// 5. "That was me" for the speaker with the most target words, a guest for the next one.
const [mine, guest] = [...speakers].sort((a, b) => total(b) - total(a));
if (!mine) throw new Error("no speakers");
const claim = (body: { speaker_id: string; claim_type: "self" | "guest"; guest_name?: string }) =>
  lahstats.api.POST("/sessions/{session_id}/claim", { params: session, body });
ok(await claim({ speaker_id: mine.id, claim_type: "self" }));
if (guest) ok(await claim({ speaker_id: guest.id, claim_type: "guest", guest_name: "Uncle Tan" }));
// Errors come in the API's one shape, thrown by ok() as an ApiError: show `message` to people,
// branch on `code`.
let refused: ApiError | undefined;
try {
  ok(await claim({ speaker_id: mine.id, claim_type: "self" }));
} catch (error) {
  if (!(error instanceof ApiError)) throw error;
  refused = error;
}

// 6. The group's leaderboard, and every word counted for me with the clip that proves it.
const leaderboard = ok(
  await lahstats.api.GET("/groups/{group_id}/stats", { params: { path: { group_id: group.id } } }),
);
const { occurrences } = ok(
  await lahstats.api.GET("/sessions/{session_id}/occurrences", {
    params: { ...session, query: { speaker_id: mine.id } },
  }),
);
const firstClip = occurrences[0]?.clip_url;
const evidence = firstClip ? await fetch(lahstats.mediaUrl(firstClip)) : undefined;

console.log(
  JSON.stringify(
    {
      me,
      group,
      started,
      uploads,
      ended,
      events,
      speakers,
      sample: await heard(sample),
      claimed: { self: mine.id, guest: guest?.id ?? null },
      refused: refused && { status: refused.status, code: refused.code, message: refused.message },
      leaderboard,
      occurrences,
      evidence: evidence ? await heard(evidence) : null,
    },
    null,
    2,
  ),
);

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

function total(speaker: SpeakerPublic): number {
  return Object.values(speaker.word_counts).reduce((sum, count) => sum + count, 0);
}

async function heard(response: Response) {
  const bytes = (await response.arrayBuffer()).byteLength;
  return { status: response.status, content_type: response.headers.get("content-type"), bytes };
}
