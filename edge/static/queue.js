/*
 * The sale's waiting room. When the sale has one, a shopper joins from the sale's banner, or
 * at an add refused for want of an admission (NOTADMITTED, or CLOSED before START: the
 * pre-queue, whose places are drawn at START): the add is remembered, the shopper joins the
 * line (POST /queue) and
 * waits on a page over the shop, which the picked sale's /ws/queue socket keeps up to date
 * (each push is also the shopper's sign of life: a closed page loses the place after the
 * sale's IDLE). Admitted, the page goes, the remembered add is made, and the shop is theirs
 * until the admission ends (a checkout uses it up).
 */

import * as api from './api.js';
import { handleError } from './errors.js';
import { pickedSale } from './state.js';
import { hideWaiting, isWaitingOpen, showWaiting, showWaitingNote } from './views/queue.js';
import { toast } from './views/toasts.js';

const RECONNECT_MS = 1000;

let socket = null;
let waitingIn = null; // the path of the sale whose line this tab waits in
let onAdmitted = () => {};
// The picked sale's waiting room, from GET /sale: {path, startsAt (local ms), commitment (the
// seed's SHA-1)}, or null.
let room = null;

/** GET /sale's reply for the picked sale: whether it has a waiting room, and when it opens. */
export function noteSale(sale) {
  const skew = Date.now() - (Number(sale.now_ms) || Date.now());
  room = sale.queue
    ? { path: pickedSale().path, startsAt: Number(sale.start_ms) + skew, commitment: String(sale.queue.seed_sha1 || '') }
    : null;
}

/** The picked sale has a waiting room and has not opened yet: an add now joins the pre-queue. */
export function beforeStartWithRoom() {
  return Boolean(room && room.path === pickedSale().path && room.startsAt > Date.now());
}

/** What to do once admitted (app.js: make the remembered add). */
export function whenAdmitted(callback) {
  onAdmitted = callback;
}

/** The seed's published SHA-1 for `sale`, if its GET /sale came back. */
const commitmentOf = (sale) => (room && room.path === sale.path ? room.commitment : '');

/** Joins the picked sale's line and waits there. */
export async function enterLine() {
  const sale = pickedSale();
  try {
    const place = await api.joinQueue(sale);
    waitingIn = sale.path;
    if (place.state === 'admitted') { admitted(); return; }
    showWaiting(place, commitmentOf(sale));
    watch(sale);
  } catch (err) {
    handleError(err);
  }
}

/** Another sale picked, or signed out: this tab stops waiting (the place lapses). */
export function leaveLine() {
  waitingIn = null;
  closeSocket();
  hideWaiting();
}

function watch(sale) {
  closeSocket();
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}${sale.path}/ws/queue`);
  socket = ws;
  ws.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.error === 'NOTQUEUED') {
      showWaitingNote('Your place lapsed; joining the line again…');
      enterLine();
    } else if (message.state === 'admitted') {
      admitted();
    } else if (message.state) {
      showWaiting(message, commitmentOf(sale));
    }
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    // Still waiting (a dropped connection, a restarted edge): back on the line's socket.
    if (waitingIn === sale.path && isWaitingOpen()) setTimeout(() => {
      if (waitingIn === sale.path && !socket) watch(sale);
    }, RECONNECT_MS);
  };
}

function admitted() {
  waitingIn = null;
  closeSocket();
  hideWaiting();
  toast('ADMITTED', 'It’s your turn: the shop is open for you', true);
  onAdmitted();
}

function closeSocket() {
  const ws = socket;
  socket = null;
  if (ws) ws.close();
}
