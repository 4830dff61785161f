// The admin dashboard: talks to /admin/api with the token kept in this tab's sessionStorage.
// Everything shown is put in with textContent, never as HTML: emails and reasons come from users.
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("wavry-admin-token") || "";

function status(text, ok) {
  const s = $("#status");
  s.textContent = text;
  s.className = ok ? "ok" : "";
}

async function api(path, body) {
  const opts = { headers: { "x-admin-token": token } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/admin/api/" + path, opts);
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({ error: resp.statusText }));
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

const utc = (secs) => new Date(secs * 1000).toISOString().replace("T", " ").slice(0, 16);

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function button(label, cls, userId, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = cls;
  b.dataset.userId = userId;
  b.addEventListener("click", onClick);
  return b;
}

async function showOverview() {
  const o = await api("overview");
  const box = $("#overview");
  box.replaceChildren();
  const labels = [
    ["users", "users"], ["sessions", "sessions"], ["bans", "bans"], ["devices", "devices"],
    ["hosts_online", "hosts online"], ["signaling_connected", "signaling now"],
    ["connections_24h", "connections, 24 h"], ["relays", "relays"],
  ];
  for (const [key, label] of labels) {
    const c = document.createElement("div");
    c.className = "card";
    c.id = "stat-" + key;
    const b = document.createElement("b");
    b.textContent = o[key];
    c.append(b, label);
    box.append(c);
  }
}

async function showUsers() {
  const q = encodeURIComponent($("#user-search").value.trim());
  const { users } = await api("users?q=" + q);
  const body = $("#users tbody");
  body.replaceChildren();
  for (const u of users) {
    const row = body.insertRow();
    row.dataset.userId = u.user_id;
    row.dataset.email = u.email;
    if (u.ban) row.className = "banned";
    cell(row, u.email, "email");
    cell(row, utc(u.created_at));
    cell(row, u.sessions, "num sessions");
    cell(row, u.devices, "num");
    cell(row, u.totp_enabled ? "on" : "off");
    cell(row, u.ban ? (u.ban.expires_at ? "until " + utc(u.ban.expires_at) : "permanent") +
      (u.ban.reason ? ": " + u.ban.reason : "") : "", "ban-state");
    const actions = row.insertCell();
    actions.append(button("Revoke sessions", "revoke", u.user_id, () => act("revoke", u)));
    actions.append(u.ban
      ? button("Unban", "unban", u.user_id, () => act("unban", u))
      : button("Ban", "ban", u.user_id, () => act("ban", u)));
  }
}

async function act(what, user) {
  try {
    if (what === "revoke") {
      const r = await api("sessions/revoke", { user_id: user.user_id });
      status(`${r.revoked} session(s) of ${user.email} revoked`, true);
    } else if (what === "ban") {
      const duration = $("#ban-duration").value;
      const body = { user_id: user.user_id, reason: $("#ban-reason").value };
      if (duration) body.duration_secs = Number(duration);
      await api("ban", body);
      status(`${user.email} banned`, true);
    } else {
      await api("unban", { user_id: user.user_id });
      status(`${user.email} unbanned`, true);
    }
  } catch (e) {
    status(`${what} failed: ${e.message}`);
  }
  await refresh();
}

async function showAudit() {
  const { entries } = await api("audit?limit=200");
  const body = $("#audit tbody");
  body.replaceChildren();
  for (const e of entries) {
    const row = body.insertRow();
    row.dataset.action = e.action;
    cell(row, new Date(e.at_ms).toISOString().replace("T", " ").slice(0, 19));
    cell(row, e.actor);
    cell(row, e.action, "action");
    cell(row, e.target);
    cell(row, e.ip);
    cell(row, e.detail);
  }
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function showDays(days) {
  const body = $("#days tbody");
  body.replaceChildren();
  for (const d of [...days].reverse()) {
    const row = body.insertRow();
    cell(row, d.day);
    for (const n of [d.connections, d.accepted, d.ended]) cell(row, n, "num");
    cell(row, d.ended ? (d.total_duration_secs / d.ended / 60).toFixed(1) + " min" : "", "num");
    cell(row, d.direct, "num");
    cell(row, d.relayed, "num");
    cell(row, bytes(d.bytes), "num");
    cell(row, d.logins, "num");
    cell(row, d.registrations, "num");
  }
}

async function showChart() {
  const { days } = await api("analytics?days=14");
  showDays(days);
  const svg = $("#chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const max = Math.max(1, ...days.map((d) => Math.max(d.connections, d.logins)));
  const w = 720 / days.length;
  days.forEach((d, i) => {
    for (const [k, value, off] of [["conn", d.connections, 0.1], ["login", d.logins, 0.5]]) {
      const h = (value / max) * 140;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("class", k);
      r.setAttribute("x", String(i * w + off * w));
      r.setAttribute("y", String(150 - h));
      r.setAttribute("width", String(w * 0.38));
      r.setAttribute("height", String(h));
      const t = document.createElementNS(ns, "title");
      t.textContent = `${d.day}: ${value} ${k === "conn" ? "connections" : "logins"}`;
      r.append(t);
      svg.append(r);
    }
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", String(i * w + 2));
    label.setAttribute("y", "168");
    label.textContent = d.day.slice(5);
    svg.append(label);
  });
}

async function refresh() {
  await Promise.all([showOverview(), showUsers(), showAudit(), showChart()]);
}

async function open() {
  try {
    await refresh();
    sessionStorage.setItem("wavry-admin-token", token);
    $("#panel").hidden = false;
    $("#forget").hidden = false;
    status("connected", true);
    document.body.dataset.ready = "1";
  } catch (e) {
    $("#panel").hidden = true;
    status(`could not open the panel: ${e.message}`);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("#token").value.trim();
    open();
  });
  $("#forget").addEventListener("click", () => {
    sessionStorage.removeItem("wavry-admin-token");
    location.reload();
  });
  let timer;
  $("#user-search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => showUsers().catch((e) => status(e.message)), 250);
  });
  if (token) open();
});
