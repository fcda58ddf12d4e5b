/*
 * What the page knows, in a few small slices. Each slice is changed only by the functions
 * next to it, and each change is announced to whoever subscribed with on(topic, listener):
 * the views redraw from here, the actions never draw state themselves.
 *
 * Topics and what their listeners receive:
 *   'user'      the signed-in username, or null when the page must show the sign-in form
 *   'catalog'   the page of products now on screen: {page, pages, products}
 *   'stock'     one product's stock changed: {id, before, available}
 *   'cart'      the cart changed: {held: true} or {held: false, holdState: 'idle'|'expired'}
 *   'checkout'  a checkout started (true) or ended (false)
 *   'cooldown'  a Retry-After started (true) or passed (false)
 *
 * The server is the authority on stock, carts and time: this is the latest of what it said.
 */

const listeners = new Map();

export function on(topic, listener) {
  if (!listeners.has(topic)) listeners.set(topic, []);
  listeners.get(topic).push(listener);
}

function emit(topic, detail) {
  for (const listener of listeners.get(topic) || []) listener(detail);
}

// ---------------------------------------------------------------- who is signed in
let user = null;

export const signedInUser = () => user;

/** null signs out locally (the sign-out button, or a 401): the sign-in form comes back. */
export function setUser(name) {
  user = name;
  emit('user', name);
}

// ---------------------------------------------------------------- catalog and stock
let catalog = Object.freeze({
  page: Math.max(1, parseInt(new URLSearchParams(location.search).get('page'), 10) || 1),
  pages: 1,
  products: [],
});
const stock = new Map(); // product id -> available units (latest known)

export const catalogPage = () => catalog;
export const stockOf = (id) => stock.get(Number(id));

/** A page of products arrived: their stock is taken as is, without a 'stock' per product. */
export function showCatalog(page, pages, products) {
  catalog = Object.freeze({ page, pages, products });
  for (const p of products) {
    const available = p.available ?? p.stock;
    if (Number.isFinite(available)) stock.set(Number(p.id), available);
  }
  emit('catalog', catalog);
}

/** A newer stock figure for one product (a cart reply, the live socket, a SOLDOUT). */
export function setStock(id, available) {
  id = Number(id);
  if (!Number.isFinite(id) || !Number.isFinite(available)) return;
  const before = stock.get(id);
  stock.set(id, available);
  if (before !== available) emit('stock', { id, before, available });
}

// ---------------------------------------------------------------- the cart
const CART_KEY = 'flash.cart';

const NO_CART = Object.freeze({ id: null, held: null, serverNow: 0, deadlineAt: 0 });
// id: the cart id, kept in sessionStorage so a reload finds the cart again.
// held: the server's last view of the cart. serverNow: its now_ms (replies may arrive out of
// order). deadlineAt: the performance.now() at which the hold ends.
let cart = NO_CART;
let changesInFlight = 0;
let checkingOut = false;

export const cartId = () => cart.id;
export const heldCart = () => cart.held;
export const holdEndsAt = () => cart.deadlineAt;
export const changesPending = () => changesInFlight > 0;
export const isCheckingOut = () => checkingOut;
export const storedCartId = () => storageGet(CART_KEY);

/** Synchronous on purpose: clicks fired before the first reply must share one cart. */
export function ensureCartId() {
  if (!cart.id) useCartId(newUuid());
  return cart.id;
}

/** Takes a cart id (a new one, or the one sessionStorage kept), before the server shows it. */
export function useCartId(id) {
  if (id === cart.id) return; // already ours: keep what the server last said about it
  cart = { ...NO_CART, id };
  storageSet(CART_KEY, id);
}

/** The server's view of the cart, unless it is for a dropped cart or older than ours. */
export function adoptCart(body) {
  if (!body || body.cart_id !== cart.id) return; // a late reply for a cart we dropped
  const now = Number(body.now_ms) || 0;
  if (now < cart.serverNow) return; // an older state overtaken by a newer reply
  if (body.state && body.state !== 'held') { dropCart('idle'); return; }
  // Server time decides the deadline; the local clock only measures time since this reply.
  const deadlineAt = performance.now() + (Number(body.deadline_ms) - now);
  cart = { id: cart.id, held: body, serverNow: now, deadlineAt };
  emit('cart', { held: true });
}

/** holdState: 'idle' hides the timer, 'expired' leaves "expired" on screen. */
export function dropCart(holdState) {
  cart = NO_CART;
  storageSet(CART_KEY, null);
  emit('cart', { held: false, holdState });
}

/** Counts add/remove calls in flight: an empty cart is dropped only once they are all back. */
export function changeStarted() { changesInFlight += 1; }
export function changeFinished() { changesInFlight -= 1; }

export function setCheckingOut(busy) {
  checkingOut = busy;
  emit('checkout', busy);
}

// ---------------------------------------------------------------- Retry-After
let cooldownUntil = 0;
let cooldownTimer = 0;

export const coolingDown = () => Date.now() < cooldownUntil;

/** Honors Retry-After: buttons that would hit the server stay disabled until it passes. */
export function coolDown(ms) {
  cooldownUntil = Math.max(cooldownUntil, Date.now() + ms);
  clearTimeout(cooldownTimer);
  cooldownTimer = setTimeout(() => emit('cooldown', false), cooldownUntil - Date.now() + 20);
  emit('cooldown', true);
}

// ---------------------------------------------------------------- helpers
function newUuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID only exists in secure contexts (https, localhost); plain-http hosts land here.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function storageGet(key) {
  try { return JSON.parse(sessionStorage.getItem(key)); } catch { return null; }
}

function storageSet(key, value) {
  try {
    if (value == null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, JSON.stringify(value));
  } catch { /* storage disabled (private mode): the in-memory state still works */ }
}
