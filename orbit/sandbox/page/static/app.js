// Orbit sandbox page. Plain JavaScript, no build step.
// Every text from the bot, a panel or a person is put into the page as text nodes
// (textContent, createTextNode): nothing is ever parsed as HTML. Formatting comes
// from Telegram's entities, rendered into elements by renderEntities().
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  users: [],
  userId: null,
  messages: new Map(), // message_id -> ShownMessage
  lastSeq: 0,
  chatStream: null,
  panelStream: null,
  drawer: null,
  clockOffset: 0,
};

// --- small helpers -----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function toast(text, kind) {
  const node = el("div", { class: `toast ${kind || ""}`, role: "status" }, text);
  $("toasts").append(node);
  setTimeout(() => node.remove(), 4000);
}

function alertBox(text) {
  $("alert-text").textContent = text;
  $("alert").showModal();
}

const COLORS = ["#e17076", "#faa774", "#a695e7", "#7bc862", "#6ec9cb", "#65aadd", "#ee7aae"];
function avatar(user, size) {
  const letters = (user.first_name || "?").trim().slice(0, 1).toUpperCase();
  const node = el("div", { class: "avatar", "aria-hidden": "true" }, letters);
  node.style.background = COLORS[(Math.abs(user.id) % 97) % COLORS.length];
  if (size) Object.assign(node.style, { width: `${size}px`, height: `${size}px` });
  return node;
}

function hhmm(unix) {
  return new Date(unix * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function bytes(n) {
  if (n === null || n === undefined) return "∞";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(value < 10 && unit ? 1 : 0)} ${units[unit]}`;
}

function safeUrl(url) {
  // Links the page may open: web and Telegram links only (never javascript: and the like).
  return /^(https?|tg|ton):\/\//i.test(url || "") ? url : null;
}

// --- entities -> elements ----------------------------------------------------------------

const WRAPPERS = {
  bold: () => el("b"),
  italic: () => el("i"),
  underline: () => el("u"),
  strikethrough: () => el("s"),
  code: () => el("code"),
  spoiler: () => el("span", { class: "spoiler", title: "spoiler", onclick: (e) => e.currentTarget.classList.add("shown") }),
  blockquote: () => el("blockquote"),
  expandable_blockquote: () => el("blockquote", { class: "expandable" }),
};

function wrapperFor(entity, text) {
  if (WRAPPERS[entity.type]) return WRAPPERS[entity.type]();
  switch (entity.type) {
    case "pre": {
      const pre = el("pre");
      if (entity.language) pre.dataset.language = entity.language;
      return pre;
    }
    case "text_link":
    case "url": {
      const href = safeUrl(entity.type === "url" ? text : entity.url);
      if (!href) return el("span");
      return el("a", { href, target: "_blank", rel: "noopener noreferrer", onclick: (e) => openLink(e, href) });
    }
    case "bot_command":
      return el("span", { class: "cmd", onclick: () => sendText(text.split("@")[0]) });
    case "mention":
    case "hashtag":
    case "cashtag":
    case "email":
    case "phone_number":
      return el("span", { class: "cmd" });
    default:
      return el("span");
  }
}

// Telegram's offsets count UTF-16 code units, as JavaScript strings do.
function renderEntities(text, entities) {
  const root = document.createDocumentFragment();
  const sorted = (entities || [])
    .filter((e) => e.length > 0 && e.offset >= 0 && e.offset < text.length)
    .sort((a, b) => a.offset - b.offset || b.length - a.length);
  build(root, text, 0, text.length, sorted);
  return root;
}

function build(parent, text, from, to, entities) {
  let cursor = from;
  let i = 0;
  while (i < entities.length) {
    const entity = entities[i];
    const start = Math.max(entity.offset, cursor);
    const end = Math.min(entity.offset + entity.length, to);
    let j = i + 1;
    while (j < entities.length && entities[j].offset < end) j += 1;
    if (start < end) {
      if (start > cursor) appendPlain(parent, text.slice(cursor, start));
      const node = wrapperFor(entity, text.slice(start, end));
      build(node, text, start, end, entities.slice(i + 1, j));
      parent.append(node);
      cursor = end;
    }
    i = j;
  }
  if (cursor < to) appendPlain(parent, text.slice(cursor, to));
}

// Plain text, with the ton:// and web links Telegram would make tappable.
function appendPlain(parent, text) {
  const pattern = /(ton:\/\/[^\s]+|https?:\/\/[^\s]+)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
    const href = match[0];
    parent.append(el("a", { href, target: "_blank", rel: "noopener noreferrer", onclick: (e) => openLink(e, href) }, href));
    last = match.index + href.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

// --- links the sandbox handles itself --------------------------------------------------------

function openLink(event, href) {
  if (href.startsWith("ton://")) {
    event.preventDefault();
    fillTon(href);
    openDrawer("wallet");
  } else if (/^https:\/\/t\.me\/CryptoBot\?start=/.test(href)) {
    event.preventDefault();
    $("cp-link").value = href;
    openDrawer("wallet");
  } else if (/^https:\/\/t\.me\//.test(href) || href.startsWith("tg://")) {
    event.preventDefault();
    toast(`Telegram would open ${href}`);
  }
}

// --- users ---------------------------------------------------------------------------------

async function loadUsers() {
  state.users = await api("GET", "/api/users");
  renderUsers();
}

function renderUsers() {
  const list = $("user-list");
  list.replaceChildren();
  for (const user of state.users) {
    const sub = [user.username ? `@${user.username}` : `id ${user.id}`, user.language.toUpperCase()].join(" · ");
    const item = el(
      "li",
      { class: `user${user.id === state.userId ? " active" : ""}`, dataset: { userId: user.id }, tabindex: 0,
        onclick: () => selectUser(user.id), onkeydown: (e) => e.key === "Enter" && selectUser(user.id) },
      avatar(user),
      el("div", { class: "user-main" },
        el("div", { class: "user-name" }, user.first_name, user.admin ? el("span", { class: "badge" }, "admin") : null),
        el("div", { class: "user-sub" }, sub)),
    );
    list.append(item);
  }
}

function currentUser() {
  return state.users.find((u) => u.id === state.userId) || null;
}

async function selectUser(userId) {
  if (state.chatStream) state.chatStream.close();
  state.userId = userId;
  state.messages.clear();
  renderUsers();
  const user = currentUser();
  $("chat-sub").textContent = `bot · you are ${user.first_name}${user.admin ? " (admin)" : ""}`;
  $("wallet-from").textContent = `Paying as ${user.first_name}, from their wallet 0:…${user.id.toString(16).padStart(8, "0")}`;
  const data = await api("GET", `/api/chats/${userId}/messages`);
  if (state.userId !== userId) return;
  for (const message of data.messages) state.messages.set(message.message_id, message);
  state.lastSeq = data.last_seq;
  renderChat();
  openChatStream(userId);
}

function openChatStream(userId) {
  const stream = new EventSource(`/api/chats/${userId}/events?after=${state.lastSeq}`);
  stream.addEventListener("chat", (event) => {
    if (state.userId !== userId) return;
    const change = JSON.parse(event.data);
    state.lastSeq = Math.max(state.lastSeq, change.seq);
    if (change.kind === "deleted") state.messages.delete(change.message_id);
    else state.messages.set(change.message_id, change.message);
    renderChat();
  });
  state.chatStream = stream;
}

// --- the chat ------------------------------------------------------------------------------

function renderChat() {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const shown = [...state.messages.values()].filter((m) => !m.deleted).sort((a, b) => a.message_id - b.message_id);
  box.replaceChildren(...withDays(shown));
  if (!shown.length) box.append(emptyHint());
  renderReplyKeyboard(shown);
  const started = shown.some((m) => !m.from_bot);
  $("start-btn").hidden = started;
  $("composer-input").hidden = !started;
  $("send-btn").hidden = !started;
  $("composer-input").disabled = false;
  $("send-btn").disabled = false;
  if (atBottom || shown.length) box.scrollTop = box.scrollHeight;
  prefillWallet(shown);
}

// A date line wherever the day changes, as Telegram shows (and the clock control makes days pass).
function withDays(shown) {
  const nodes = [];
  let day = null;
  for (const m of shown) {
    const label = new Date(m.date * 1000).toLocaleDateString([], { day: "numeric", month: "long", year: "numeric" });
    if (label !== day) {
      nodes.push(el("div", { class: "service day" }, label));
      day = label;
    }
    nodes.push(renderMessage(m));
  }
  return nodes;
}

function emptyHint() {
  return el("div", { class: "empty" },
    el("div", { class: "empty-card" },
      el("div", { class: "empty-title" }, "No messages here yet"),
      el("div", null, "Press Start below: the bot receives /start from this user.")));
}

function renderMessage(m) {
  if (m.kind === "successful_payment" || m.kind === "refunded_payment") {
    const payment = m.successful_payment || m.refunded_payment || {};
    const what = m.kind === "successful_payment" ? "You paid" : "Refunded";
    return el("div", { class: "service", dataset: { messageId: m.message_id } }, `${what} ${payment.total_amount} ⭐`);
  }
  const wrap = el("div", { class: `msg ${m.from_bot ? "in" : "out"}`, dataset: { messageId: m.message_id, kind: m.kind } });
  const bubble = el("div", { class: "bubble" });
  const meta = el("span", { class: "meta" }, m.edited ? "edited " : "", hhmm(m.date));
  if (m.kind === "photo" && m.photo) {
    bubble.classList.add("media");
    const src = m.photo.url && safeUrl(m.photo.url) ? m.photo.url : `/api/files/${encodeURIComponent(m.photo.file_id)}`;
    bubble.append(el("img", { class: "photo", src, alt: "photo", width: m.photo.width || null, height: m.photo.height || null }));
    if (m.caption) bubble.append(el("div", { class: "caption" }, renderEntities(m.caption, m.caption_entities || m.entities), meta));
    else bubble.append(meta);
  } else if (m.kind === "document" && m.document) {
    const doc = m.document;
    bubble.append(
      el("a", { class: "doc", href: `/api/files/${encodeURIComponent(doc.file_id)}`, download: doc.file_name || "file" },
        el("div", { class: "doc-icon" }, "📄"),
        el("div", null, el("div", { class: "doc-name" }, doc.file_name || "file"), el("div", { class: "doc-size" }, bytes(doc.file_size)))),
    );
    if (m.caption) bubble.append(el("div", { class: "caption" }, renderEntities(m.caption, m.caption_entities || m.entities)));
    bubble.append(meta);
  } else if (m.kind === "invoice" && m.invoice) {
    const inv = m.invoice;
    bubble.append(
      el("div", { class: "invoice-title" }, inv.title),
      el("div", { class: "invoice-desc" }, inv.description),
      el("div", { class: "invoice-total" }, inv.currency === "XTR" ? `⭐ ${inv.total_amount}` : `${inv.total_amount} ${inv.currency}`),
      meta,
    );
  } else {
    bubble.append(renderEntities(m.text || m.caption || "", m.entities), meta);
  }
  wrap.append(bubble);
  const keyboard = inlineKeyboard(m);
  if (keyboard) wrap.append(keyboard);
  return wrap;
}

function inlineKeyboard(m) {
  const rows = (m.reply_markup && m.reply_markup.inline_keyboard) || [];
  if (m.kind === "invoice" && !rows.length) rows.push([{ text: `Pay ⭐ ${m.invoice.total_amount}`, pay: true }]);
  if (!rows.length) return null;
  const box = el("div", { class: "ikb" });
  rows.forEach((row, index) => {
    box.append(el("div", { class: "ikb-row" }, ...row.map((button) => inlineButton(m, button, index === 0))));
  });
  return box;
}

function inlineButton(m, button, firstRow) {
  const isPay = button.pay || (m.kind === "invoice" && firstRow && !button.callback_data && !button.url);
  if (isPay) {
    const paid = m.invoice && m.invoice.paid;
    return el("button", { class: "pay", disabled: paid, onclick: (e) => payInvoice(m, e.currentTarget) }, paid ? "Paid ✓" : button.text);
  }
  if (button.url) {
    return el("button", { class: "url", title: button.url, onclick: (e) => openButtonUrl(e, button.url) }, button.text);
  }
  if (button.callback_data !== undefined) {
    return el("button", { onclick: (e) => press(m, button, e.currentTarget) }, button.text);
  }
  return el("button", { disabled: true, title: "not supported by the sandbox" }, button.text);
}

function openButtonUrl(event, url) {
  const href = safeUrl(url);
  if (!href) return toast("This button's link cannot be opened here", "error");
  openLink(event, href);
  if (!event.defaultPrevented) window.open(href, "_blank", "noopener");
}

async function press(m, button, node) {
  node.classList.add("busy");
  try {
    const answer = await api("POST", `/api/chats/${state.userId}/press`, { message_id: m.message_id, data: button.callback_data });
    if (answer.text) {
      if (answer.show_alert) alertBox(answer.text);
      else toast(answer.text);
    }
    if (answer.url && safeUrl(answer.url)) window.open(answer.url, "_blank", "noopener");
  } catch (error) {
    toast(error.message, "error");
  } finally {
    node.classList.remove("busy");
  }
}

async function payInvoice(m, node) {
  node.disabled = true;
  try {
    const outcome = await api("POST", `/api/chats/${state.userId}/pay`, { message_id: m.message_id });
    if (outcome.status === "paid") {
      // Telegram turns the button into a receipt; the invoice message itself is not edited.
      const shown = state.messages.get(m.message_id);
      if (shown && shown.invoice) shown.invoice.paid = true;
      renderChat();
      toast(`Paid ⭐ ${m.invoice.total_amount}`);
    }
    else if (outcome.status === "rejected") alertBox(outcome.error_message || "The bot refused the payment.");
    else alertBox("The bot did not confirm the payment in time; no Stars were taken.");
  } catch (error) {
    toast(error.message, "error");
    node.disabled = false;
  }
}

function renderReplyKeyboard(shown) {
  let keyboard = null;
  for (const m of shown) {
    const markup = m.from_bot && m.reply_markup;
    if (!markup) continue;
    if (markup.keyboard) keyboard = markup.keyboard;
    else if (markup.remove_keyboard) keyboard = null;
  }
  const box = $("reply-keyboard");
  box.replaceChildren();
  box.hidden = !keyboard;
  for (const row of keyboard || []) {
    box.append(el("div", { class: "row" }, ...row.map((b) => {
      const text = typeof b === "string" ? b : b.text;
      return el("button", { type: "button", onclick: () => sendText(text) }, text);
    })));
  }
}

async function sendText(text) {
  if (!state.userId) return;
  try {
    await api("POST", `/api/chats/${state.userId}/send`, { text });
  } catch (error) {
    toast(error.message, "error");
  }
}

// --- wallet ------------------------------------------------------------------------------

function parseTonLink(link) {
  const match = /^ton:\/\/transfer\/([^?\s]+)(?:\?(\S*))?$/.exec(link);
  if (!match) return null;
  const query = new URLSearchParams(match[2] || "");
  const amount = query.get("amount");
  let ton = "";
  if (amount && /^\d+$/.test(amount)) {
    const nanos = amount.padStart(10, "0");
    ton = `${nanos.slice(0, -9)}.${nanos.slice(-9)}`.replace(/\.?0+$/, "");
  }
  return { address: decodeURIComponent(match[1]), amount: ton, comment: query.get("text") || "" };
}

function fillTon(link) {
  const parsed = parseTonLink(link);
  if (!parsed) return false;
  $("ton-amount").value = parsed.amount;
  $("ton-comment").value = parsed.comment;
  if (parsed.address !== state.config.ton_address) toast("That link pays another address; the wallet pays the shop's.", "error");
  return true;
}

function lastTonLink(shown) {
  for (const m of [...shown].reverse()) {
    if (!m.from_bot) continue;
    const found = /ton:\/\/transfer\/\S+/.exec(m.text || m.caption || "");
    if (found) return found[0];
  }
  return null;
}

function lastCryptoPayLink(shown) {
  for (const m of [...shown].reverse()) {
    for (const row of (m.reply_markup && m.reply_markup.inline_keyboard) || []) {
      for (const button of row) {
        if (button.url && /^https:\/\/t\.me\/CryptoBot\?start=/.test(button.url)) return button.url;
      }
    }
  }
  return null;
}

let prefilledFrom = { ton: null, cp: null };
function prefillWallet(shown) {
  const ton = lastTonLink(shown);
  if (ton && ton !== prefilledFrom.ton) {
    prefilledFrom.ton = ton;
    fillTon(ton);
  }
  const cp = lastCryptoPayLink(shown);
  if (cp && cp !== prefilledFrom.cp) {
    prefilledFrom.cp = cp;
    $("cp-link").value = cp;
  }
}

function history(listId, text, failed) {
  const item = el("li", { class: failed ? "failed" : "" }, text);
  $(listId).prepend(item);
}

async function sendTon() {
  if (!state.userId) return toast("Pick a test user first: the wallet is theirs.", "error");
  const amount = $("ton-amount").value.trim();
  const comment = $("ton-comment").value;
  try {
    const sent = await api("POST", "/api/wallet/ton", { user_id: state.userId, amount, comment });
    history("ton-history", `Sent ${amount} TON${comment ? ` · “${comment}”` : ""} · tx ${sent.hash.slice(0, 10)}…`);
    toast(`Sent ${amount} TON`);
  } catch (error) {
    history("ton-history", `Not sent: ${error.message}`, true);
  }
}

async function payCryptoPay() {
  const link = $("cp-link").value.trim();
  try {
    const invoice = await api("POST", "/api/wallet/cryptopay", { link, asset: $("cp-asset").value });
    history("cp-history", `Paid invoice #${invoice.invoice_id}: ${invoice.paid_amount} ${invoice.paid_asset}`);
    toast("Crypto Pay invoice paid");
  } catch (error) {
    history("cp-history", `Not paid: ${error.message}`, true);
  }
}

// --- panels --------------------------------------------------------------------------------

function renderPanels(panels) {
  const list = $("panels-list");
  list.replaceChildren(...panels.map(renderPanel));
}

function renderPanel(panel) {
  const card = el("div", { class: "card panel", dataset: { panelId: panel.id } },
    el("div", { class: "panel-head" },
      el("div", { class: "card-title" }, el("span", { class: `dot ${panel.up ? "up" : "down"}` }), panel.name),
      el("div", { class: "field-note" }, panel.url)));
  if (!panel.up) {
    card.append(el("div", { class: "field-note" }, `unreachable: ${panel.error}`));
    return card;
  }
  card.append(el("div", { class: "subhead" }, "Nodes"));
  for (const node of panel.nodes) {
    const toggle = el("input", { type: "checkbox", checked: node.status !== "error" && node.status !== "disabled",
      "aria-label": `${node.name} up`, onchange: (e) => setNode(panel.id, node.id, e.currentTarget.checked) });
    card.append(el("div", { class: "node", dataset: { nodeId: node.id } },
      el("div", null,
        el("div", { class: "node-name" }, el("span", { class: `dot ${node.status}` }), node.name),
        el("div", { class: "node-msg" }, node.message ? `${node.status}: ${node.message}` : node.status)),
      el("label", { class: "switch" }, toggle, el("span"))));
  }
  card.append(el("div", { class: "subhead" }, `Users (${panel.users.length})`));
  if (!panel.users.length) {
    card.append(el("div", { class: "field-note" }, "No users yet: create a config in the bot."));
    return card;
  }
  const body = el("tbody");
  for (const user of panel.users) {
    body.append(el("tr", { dataset: { username: user.username } },
      el("td", { class: "uname" }, user.username),
      el("td", null, el("span", { class: `dot ${user.status}` }), user.status),
      el("td", null, user.expire ? new Date(user.expire * 1000).toLocaleDateString() : "never"),
      el("td", null, `${bytes(user.used_traffic)} / ${bytes(user.data_limit)}`),
      el("td", null, el("button", { title: "Add 1 GB of usage", onclick: () => addUsage(panel.id, user.username, 1) }, "+1 GB"))));
  }
  card.append(el("table", { class: "pusers" },
    el("thead", null, el("tr", null, el("th", null, "user"), el("th", null, "status"), el("th", null, "expires"), el("th", null, "traffic"), el("th"))),
    body));
  return card;
}

async function setNode(panelId, nodeId, up) {
  try {
    await api("POST", `/api/panels/${encodeURIComponent(panelId)}/nodes/${nodeId}`, { up });
    toast(up ? "Node is back up" : "Node taken down");
  } catch (error) {
    toast(error.message, "error");
  }
}

async function addUsage(panelId, username, gb) {
  try {
    await api("POST", `/api/panels/${encodeURIComponent(panelId)}/users/${encodeURIComponent(username)}/usage`, { gb });
    toast(`+${gb} GB for ${username}`);
  } catch (error) {
    toast(error.message, "error");
  }
}

function openPanelStream() {
  if (state.panelStream) return;
  state.panelStream = new EventSource("/api/panels/events");
  state.panelStream.addEventListener("panels", (event) => renderPanels(JSON.parse(event.data)));
}

function closePanelStream() {
  if (state.panelStream) state.panelStream.close();
  state.panelStream = null;
}

// --- clock ---------------------------------------------------------------------------------

function renderClock() {
  const now = new Date(Date.now() + state.clockOffset * 1000);
  $("clock-now").textContent = now.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  const days = state.clockOffset / 86400;
  $("clock-offset").textContent = state.clockOffset ? `Running ${days.toFixed(days < 1 ? 2 : 1)} days ahead of real time.` : "Real time.";
}

async function loadClock() {
  if (!state.config.clock) return;
  try {
    const clock = await api("GET", "/api/clock");
    state.clockOffset = clock.offset || 0;
  } catch (error) {
    $("tool-clock").hidden = true; // a sandbox without its clock control: nothing to move
  }
  renderClock();
}

async function advanceClock(hours) {
  if (!(hours > 0)) return toast("Move the clock forward by a positive amount", "error");
  try {
    const clock = await api("POST", "/api/clock", { hours });
    state.clockOffset = clock.offset;
    renderClock();
    toast(`Time moved forward by ${hours >= 24 ? `${+(hours / 24).toFixed(2)} days` : `${hours} h`}`);
  } catch (error) {
    toast(error.message, "error");
  }
}

// --- drawer --------------------------------------------------------------------------------

const TITLES = { wallet: "Wallet", panels: "Marzban panels", clock: "Clock" };

function openDrawer(name) {
  state.drawer = name;
  $("drawer").hidden = false;
  $("app").classList.add("with-drawer");
  $("drawer-title").textContent = TITLES[name];
  for (const section of document.querySelectorAll(".drawer-body")) section.hidden = section.dataset.panel !== name;
  for (const tool of document.querySelectorAll(".tool")) tool.classList.toggle("active", tool.dataset.panel === name);
  if (name === "panels") openPanelStream();
  else closePanelStream();
}

function closeDrawer() {
  state.drawer = null;
  $("drawer").hidden = true;
  $("app").classList.remove("with-drawer");
  for (const tool of document.querySelectorAll(".tool")) tool.classList.remove("active");
  closePanelStream();
}

// --- start-up --------------------------------------------------------------------------------

function wire() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("composer-input");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    sendText(text);
  });
  $("start-btn").addEventListener("click", () => sendText("/start"));
  $("new-user-btn").addEventListener("click", () => {
    $("nu-error").textContent = "";
    $("new-user").showModal();
    $("nu-first").focus();
  });
  $("nu-cancel").addEventListener("click", () => $("new-user").close());
  $("new-user-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const user = await api("POST", "/api/users", {
        first_name: $("nu-first").value,
        username: $("nu-username").value || null,
        language: $("nu-language").value,
      });
      $("new-user").close();
      $("new-user-form").reset();
      await loadUsers();
      await selectUser(user.id);
    } catch (error) {
      $("nu-error").textContent = error.message;
    }
  });
  for (const tool of document.querySelectorAll(".tool")) {
    tool.addEventListener("click", () => (state.drawer === tool.dataset.panel ? closeDrawer() : openDrawer(tool.dataset.panel)));
  }
  $("drawer-close").addEventListener("click", closeDrawer);
  $("ton-send").addEventListener("click", sendTon);
  $("ton-fill").addEventListener("click", () => {
    const link = lastTonLink([...state.messages.values()].sort((a, b) => a.message_id - b.message_id));
    if (!link || !fillTon(link)) toast("No ton:// link in this chat yet", "error");
  });
  $("cp-pay").addEventListener("click", payCryptoPay);
  for (const button of document.querySelectorAll("[data-advance-hours]")) {
    button.addEventListener("click", () => advanceClock(Number(button.dataset.advanceHours)));
  }
  $("clock-go").addEventListener("click", () => {
    const amount = Number($("clock-amount").value);
    advanceClock($("clock-unit").value === "days" ? amount * 24 : amount);
  });
}

async function main() {
  wire();
  state.config = await api("GET", "/api/config");
  $("chat-name").textContent = state.config.bot_name;
  $("ton-to").value = state.config.ton_address;
  $("tool-clock").hidden = !state.config.clock;
  await loadUsers();
  await loadClock();
  setInterval(renderClock, 30000);
  renderClock();
}

main().catch((error) => toast(`The page could not start: ${error.message}`, "error"));
