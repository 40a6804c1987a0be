// The session page: sign in, pick a group, see its sessions and leaderboard, follow a session's
// processing live, listen to its speakers and every counted word, claim speakers.
// Views follow the address: #/groups/ID and #/groups/ID/sessions/ID.
import { api, auth, ApiError, followEvents } from "./api.js";

const $ = (id) => document.getElementById(id);
const DONE = new Set(["ready_for_claiming", "completed", "failed"]);
const CLAIMABLE = new Set(["ready_for_claiming", "completed"]);
const STATUS = {
  recording: "Recording",
  processing: "Processing",
  ready_for_claiming: "Ready: claim your voice",
  completed: "Completed",
  failed: "Failed",
};
const STAGE = {
  concatenating: "joining the chunks",
  diarizing: "telling the voices apart",
  transcribing: "transcribing",
  verifying: "listening again for the target words",
  analysing: "counting words and moods",
  sample_clips: "cutting sample clips",
  saving_results: "saving the results",
  done: "done",
};
const RETRY_MS = 2000;

const state = { me: null, groups: [], groupId: null, members: new Map(), session: null, stream: null };

/** A DOM element: props set as properties (or attributes), children appended as text or nodes. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child != null && child !== false) node.append(child);
  return node;
}

function show(ids) {
  for (const id of ["sign-in", "group", "sessions", "session", "board"]) $(id).hidden = !ids.includes(id);
}

function say(error) {
  if (error && error.name === "AbortError") return;
  const notice = $("notice");
  if (!error) {
    notice.hidden = true;
    notice.textContent = "";
    return;
  }
  if (!(error instanceof ApiError)) console.error(error);
  notice.textContent = error instanceof ApiError ? error.sentence : "Something went wrong on this page. Reload it and try again.";
  notice.hidden = false;
  if (error instanceof ApiError && error.status === 401) signedOut();
}

/** Run an action; its error, if any, is shown as a sentence. */
async function attempt(action) {
  try {
    await action();
  } catch (error) {
    say(error);
  }
}

// --- signing in -------------------------------------------------------------------------------
async function signIn() {
  state.me = await api("/me");
  state.groups = (await api("/groups")).groups;
  $("me-name").textContent = state.me.display_name || `You (${state.me.user_id.slice(0, 8)})`;
  $("whoami").hidden = false;
  await route();
}

function signedOut() {
  stopStream();
  auth.token = null;
  state.me = null;
  $("whoami").hidden = true;
  show(["sign-in"]);
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  say(null);
  auth.token = $("token").value.trim();
  attempt(signIn);
});

$("sign-out").addEventListener("click", () => {
  say(null);
  signedOut();
});

// --- groups, sessions, leaderboard ------------------------------------------------------------
function memberName(userId) {
  if (state.me && userId === state.me.user_id) return "You";
  return state.members.get(userId) || `Member ${userId.slice(0, 8)}`;
}

async function openGroup(groupId) {
  const select = $("group-select");
  select.replaceChildren(...state.groups.map((g) => el("option", { value: g.id }, g.name)));
  select.value = groupId;
  $("back").href = `#/groups/${groupId}`;
  if (state.groupId !== groupId) {
    const detail = await api(`/groups/${groupId}`);
    state.members = new Map(detail.members.map((m) => [m.user_id, m.display_name]));
    state.groupId = groupId;
  }
}

$("group-select").addEventListener("change", (event) => {
  location.hash = `#/groups/${event.target.value}`;
});

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

async function showSessions(groupId) {
  const { sessions } = await api(`/groups/${groupId}/sessions`);
  $("session-list").replaceChildren(
    ...sessions.map((s) =>
      el("li", { "data-session-id": s.id },
        el("a", { className: "session-link", href: `#/groups/${groupId}/sessions/${s.id}` },
          el("strong", {}, when(s.started_at)),
          el("span", { className: "muted" }, statusLine(s)),
        ),
      ),
    ),
  );
  $("no-sessions").hidden = sessions.length > 0;
}

function statusLine(s) {
  const base = STATUS[s.status] || s.status;
  if (s.status === "processing") return `${base}: ${s.progress}%`;
  if (s.duration_seconds) return `${base} · ${clock(s.duration_seconds)} long`;
  return base;
}

async function showLeaderboard(groupId) {
  const { members } = await api(`/groups/${groupId}/stats`);
  $("leaderboard").replaceChildren(
    ...members.map((m) =>
      el("li", { "data-user-id": m.user_id },
        el("span", { className: "name" }, memberName(m.user_id)),
        el("span", { className: "total" }, String(m.total)),
        el("span", { className: "words muted" }, wordList(m.word_counts) || "no target words yet"),
      ),
    ),
  );
}

function wordList(counts) {
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([word, n]) => `${word} ×${n}`)
    .join(" · ");
}

// --- one session ------------------------------------------------------------------------------
function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

async function showSession(sessionId) {
  state.session = sessionId;
  $("results").hidden = true;
  const status = await api(`/sessions/${sessionId}/status`);
  renderStatus(status);
  if (DONE.has(status.status)) await showResults(sessionId, status);
  else follow(sessionId);
}

/** Live progress over server-sent events; reconnects while the session is not done. */
function follow(sessionId) {
  stopStream();
  const controller = new AbortController();
  state.stream = controller;
  let last = null;
  const onEvent = (name, data) => {
    if (name !== "status" || state.session !== sessionId) return;
    last = data;
    renderStatus(data);
  };
  followEvents(`/sessions/${sessionId}/events`, onEvent, controller.signal)
    .then(() => (last && DONE.has(last.status) ? attempt(() => showResults(sessionId, last)) : retry()))
    .catch((error) => {
      if (error.name === "AbortError") return;
      say(error);
      if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) retry();
    });
  function retry() {
    if (!controller.signal.aborted) setTimeout(() => controller.signal.aborted || follow(sessionId), RETRY_MS);
  }
}

async function showTitle(groupId, sessionId) {
  $("session-title").textContent = "Session";
  const { sessions } = await api(`/groups/${groupId}/sessions`);
  const session = sessions.find((s) => s.id === sessionId);
  if (session && state.session === sessionId) $("session-title").textContent = `Session of ${when(session.started_at)}`;
}

function renderStatus(status) {
  $("progress").value = status.progress;
  $("progress-text").textContent = `${status.progress}%`;
  let stage = "";
  if (status.status === "processing") stage = STAGE[status.stage] ? `: ${STAGE[status.stage]}` : ": waiting for a worker";
  let text = `${STATUS[status.status] || status.status}${stage}`;
  if (status.status === "failed" && status.error_message) text = `Processing failed: ${status.error_message}.`;
  $("status-text").textContent = text;
  $("status-text").dataset.status = status.status;
  $("warnings").replaceChildren(...(status.warnings || []).map((w) => el("li", {}, w)));
}

async function showResults(sessionId, status) {
  if (status.status === "failed") return;
  const [{ speakers }, { occurrences }] = await Promise.all([
    api(`/sessions/${sessionId}/speakers`),
    api(`/sessions/${sessionId}/occurrences`),
  ]);
  if (state.session !== sessionId) return;
  const names = new Map(speakers.map((s) => [s.id, speakerName(s)]));
  $("speakers").replaceChildren(...speakers.map((s) => speakerCard(s, status.status)));
  $("occurrences").replaceChildren(...occurrences.map((o) => occurrenceCard(o, names)));
  $("no-occurrences").hidden = occurrences.length > 0;
  $("results").hidden = false;
  await showLeaderboard(state.groupId);
}

function speakerName(s) {
  if (s.claim_type === "guest" && s.guest_name) return s.guest_name;
  if (s.claimed_by) return memberName(s.claimed_by);
  const number = Number(s.speaker_label.replace(/\D/g, ""));
  return Number.isFinite(number) ? `Speaker ${number + 1}` : s.speaker_label;
}

function claimState(s) {
  if (!s.claimed_by) return "Not claimed yet";
  const claimer = s.claimed_by === state.me.user_id ? "you" : memberName(s.claimed_by);
  if (s.claim_type === "guest") return `A guest, named by ${claimer}`;
  return s.claimed_by === state.me.user_id ? "This was you" : `Claimed by ${memberName(s.claimed_by)}`;
}

function speakerCard(s, status) {
  const facts = [`${clock(s.total_duration_seconds)} of speech`, `${s.segment_count} turns`];
  if (s.dominant_emotion) facts.push(`mostly ${s.dominant_emotion}`);
  return el("li", { className: "speaker", "data-speaker-id": s.id },
    el("div", { className: "speaker-head" }, el("strong", {}, speakerName(s)), el("span", { className: "muted" }, s.speaker_label)),
    el("div", { className: "muted" }, facts.join(" · ")),
    el("div", { className: "claim-state" }, claimState(s)),
    s.sample_audio_url ? el("audio", { controls: true, preload: "metadata", src: s.sample_audio_url, className: "sample" }) : null,
    wordChips(s.word_counts),
    CLAIMABLE.has(status) ? claimActions(s) : null,
  );
}

function wordChips(counts) {
  const entries = Object.entries(counts).filter(([, n]) => n > 0);
  if (!entries.length) return el("p", { className: "muted" }, "No target words");
  return el("ul", { className: "chips" }, entries.map(([word, n]) => el("li", {}, `${word} ×${n}`)));
}

function claimActions(s) {
  if (s.claimed_by) {
    if (s.claimed_by !== state.me.user_id) return null;
    return el("div", { className: "actions" },
      el("button", { type: "button", className: "secondary unclaim", onclick: () => unclaim(s) }, "Undo my claim"));
  }
  const guestName = el("input", { type: "text", placeholder: "Guest's name", maxLength: 120, required: true, "aria-label": "Guest's name" });
  const guestForm = el("form", { onsubmit: (event) => { event.preventDefault(); claim(s, "guest", guestName.value.trim()); } },
    guestName, el("button", { type: "submit", className: "secondary" }, "Claim"));
  return el("div", { className: "actions" },
    el("button", { type: "button", className: "claim-self", onclick: () => claim(s, "self") }, "That's me"),
    el("details", {}, el("summary", {}, "Someone else (a guest)"), guestForm),
  );
}

async function claim(speaker, claimType, guestName) {
  const body = { speaker_id: speaker.id, claim_type: claimType };
  if (claimType === "guest") body.guest_name = guestName;
  await changeClaims(() => api(`/sessions/${state.session}/claim`, { method: "POST", body }));
}

async function unclaim(speaker) {
  await changeClaims(() => api(`/sessions/${state.session}/claim/${speaker.id}`, { method: "DELETE" }));
}

async function changeClaims(request) {
  say(null);
  await attempt(async () => {
    await request();
    const status = await api(`/sessions/${state.session}/status`);
    renderStatus(status);
    await showResults(state.session, status);
  });
}

function occurrenceCard(o, names) {
  const evidence = [`heard “${o.heard}”`];
  if (o.source === "correction" || o.source === "verified") evidence.push(`rule ${o.rule}`);
  if (o.source === "verified") evidence.push("confirmed by a second listen");
  if (o.confidence != null) evidence.push(`${Math.round(o.confidence * 100)}% sure`);
  return el("li", { className: `occurrence${o.counted ? "" : " not-counted"}`, "data-occurrence-id": o.id, "data-speaker-id": o.speaker_id, "data-counted": String(o.counted) },
    el("div", {}, el("strong", { className: "word" }, o.word), " · ", names.get(o.speaker_id) || o.speaker_label,
      o.start != null ? ` · at ${clock(o.start)}` : "", " ", el("span", { className: "verdict" }, verdict(o))),
    o.text ? el("q", {}, o.text) : null,
    el("div", { className: "muted" }, evidence.join(" · ")),
    o.clip_url ? el("audio", { controls: true, preload: "none", src: o.clip_url, className: "evidence" }) : null,
    el("div", { className: "actions" },
      o.counted
        ? el("button", { type: "button", className: "secondary dispute", onclick: () => review(o, "dispute") }, "That wasn't it")
        : el("button", { type: "button", className: "secondary confirm", onclick: () => review(o, "confirm") }, "Count it")),
  );
}

/** Why an occurrence counts or not: a member's decision, else the confidence threshold. */
function verdict(o) {
  if (o.decision === "disputed") return `disputed by ${o.decided_by === state.me.user_id ? "you" : memberName(o.decided_by)}`;
  if (o.decision === "confirmed") return `confirmed by ${o.decided_by === state.me.user_id ? "you" : memberName(o.decided_by)}`;
  return o.counted ? "" : "possible (not counted)";
}

async function review(occurrence, action) {
  await changeClaims(() => api(`/sessions/${state.session}/occurrences/${occurrence.id}/${action}`, { method: "POST" }));
}

/** Seconds as m:ss. */
function clock(seconds) {
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

// --- the address decides the view -------------------------------------------------------------
async function route() {
  if (!state.me) return;
  const [, groupId, sessionId] = location.hash.match(/^#\/groups\/([\w-]+)(?:\/sessions\/([\w-]+))?/) || [];
  if (!state.groups.length) {
    show(["group"]);
    $("no-groups").hidden = false;
    return;
  }
  if (!groupId) {
    location.replace(`#/groups/${state.groups[0].id}`);
    return;
  }
  await openGroup(groupId);
  if (sessionId) {
    show(["group", "session", "board"]);
    await Promise.all([showSession(sessionId), showTitle(groupId, sessionId), showLeaderboard(groupId)]);
  } else {
    stopStream();
    state.session = null;
    show(["group", "sessions", "board"]);
    await Promise.all([showSessions(groupId), showLeaderboard(groupId)]);
  }
}

window.addEventListener("hashchange", () => {
  say(null);
  attempt(route);
});

if (auth.token) attempt(signIn);
else show(["sign-in"]);
