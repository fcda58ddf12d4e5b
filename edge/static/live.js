/*
 * Live stock over the picked sale's /ws/catalog WebSocket: the page subscribes to the
 * products on screen with {"subscribe": [ids]} and hears {product_id, available} as they
 * change. It reconnects with exponential backoff and jitter, and re-subscribes on every open;
 * a sale picked is a new socket (app.js closes the old one and connects again).
 */

import { catalogPage, pickedSale, setStock } from './state.js';
import { setLive } from './views/header.js';

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 10000;
const HEALTHY_MS = 5000; // a socket open this long counts as a success for backoff

let socket = null;
let attempt = 0; // failed connections in a row: the backoff's exponent
let retryTimer = 0;
let wanted = false; // the shop is on screen: keep a socket (visitors see live stock too)

export function connectLive() {
  wanted = true;
  if (socket) return;
  clearTimeout(retryTimer);
  setLive(attempt ? 'reconnecting' : 'connecting');
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let ws;
  try {
    ws = new WebSocket(`${proto}//${location.host}${pickedSale().path}/ws/catalog`);
  } catch {
    scheduleReconnect();
    return;
  }
  let openedAt = 0;
  socket = ws;
  ws.onopen = () => {
    openedAt = performance.now();
    setLive('live');
    subscribe(); // also re-subscribes after a reconnect
  };
  ws.onmessage = (event) => onMessage(event.data);
  ws.onerror = () => { /* onclose follows and does the work */ };
  ws.onclose = () => {
    if (socket !== ws) return; // closed on purpose by closeLive()
    socket = null;
    // A server that accepts then drops us at once must not be hammered: only reset the
    // backoff after the socket has proved itself.
    if (openedAt && performance.now() - openedAt > HEALTHY_MS) attempt = 0;
    if (wanted) scheduleReconnect();
  };
}

function scheduleReconnect() {
  const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** attempt);
  attempt += 1;
  // Jitter spreads out thousands of tabs reconnecting after the same server restart.
  const delay = base / 2 + Math.random() * (base / 2);
  setLive('reconnecting');
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connectLive, delay);
}

export function closeLive() {
  wanted = false;
  clearTimeout(retryTimer);
  const ws = socket;
  socket = null;
  attempt = 0;
  // Closing a socket still connecting makes Chrome log an error; let it open, then close.
  if (ws && ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close();
  else if (ws) ws.close();
  setLive('offline');
}

/** Reconnect at once (skipping the backoff) when the tab returns or the network is back. */
export function reconnectNow() {
  if (!wanted || socket) return;
  attempt = 0;
  connectLive();
}

/** Tells the server which products are on screen now. */
export function subscribe() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ subscribe: catalogPage().products.map((p) => Number(p.id)) }));
}

function onMessage(raw) {
  let msg;
  try { msg = JSON.parse(raw); } catch { return; }
  // The answer to a subscribe may come as one message per product or as a list.
  const updates = Array.isArray(msg) ? msg : [msg];
  for (const u of updates) {
    if (u && u.product_id != null) setStock(u.product_id, Number(u.available));
  }
}
