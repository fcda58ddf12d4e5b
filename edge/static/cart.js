/*
 * The cart's calls: restore after a reload, add and remove, checkout. The cart id is created
 * synchronously at the first add click (ensureCartId), so parallel clicks share one cart.
 */

import * as api from './api.js';
import { CART_GONE, MESSAGES } from './api.js';
import { handleError } from './errors.js';
import { startOrder } from './order.js';
import { beforeStartWithRoom, enterLine } from './queue.js';
import { rememberAdd } from './session.js';
import {
  adoptCart, cartId, changeFinished, changeStarted, changesPending, coolingDown, dropCart,
  ensureCartId, heldCart, isCheckingOut, pickedSale, setCheckingOut, setStock, storedCartId,
  useCartId,
} from './state.js';
import { bumpBadge, closeDrawer } from './views/cart.js';
import { toast } from './views/toasts.js';

const POLL_FOR_MS = 60000; // how long an order's status is polled before the popup gives up

/** After sign-in or a sale picked: the cart this tab had in that sale, if the server still
    holds it. */
export async function restoreCart() {
  const id = storedCartId();
  if (typeof id !== 'string' || !id) return;
  useCartId(id);
  try {
    adoptCart(await api.getCart(pickedSale(), id));
    dropEmptyCart();
  } catch (err) {
    if (err.status === 401) return; // keep it: the same user may sign back in
    if (cartId() === id && !heldCart()) dropCart('idle'); // 404, other owner, …
  }
}

/** op: 'add' or 'remove', one unit. */
export async function changeQty(productId, op) {
  if (coolingDown()) { toast('RATE_LIMITED', MESSAGES.RATE_LIMITED); return; }
  const id = op === 'add' ? ensureCartId() : cartId();
  if (!id) return;
  changeStarted();
  try {
    const reply = await api.changeCart(pickedSale(), op, id, productId, 1);
    if (reply) {
      setStock(reply.product_id ?? productId, Number(reply.available));
      adoptCart(reply.cart);
    }
    if (op === 'add') bumpBadge();
  } catch (err) {
    if (err.code === 'SOLDOUT' && op === 'add') setStock(productId, 0);
    if (op === 'add' && (err.code === 'NOTADMITTED' || (err.code === 'CLOSED' && beforeStartWithRoom()))) {
      // The sale's waiting room: the add is made once the shopper's turn comes.
      rememberAdd(productId);
      enterLine();
      return;
    }
    // A late failure for a cart we already let go of has nothing left to tell the user.
    if (id !== cartId() && CART_GONE.has(err.code)) return;
    handleError(err);
  } finally {
    changeFinished();
    dropEmptyCart();
  }
}

/** An empty cart is not worth a running timer: the next add starts a fresh one. */
function dropEmptyCart() {
  if (changesPending() || !cartId() || isCheckingOut()) return;
  const cart = heldCart();
  if (!cart || !(cart.units > 0)) dropCart('idle');
}

/** The countdown reached the server's deadline: the server has let the units go too. */
export function expireCart() {
  dropCart('expired');
  toast('EXPIRED', MESSAGES.EXPIRED);
}

export async function checkout() {
  const id = cartId();
  if (!id || isCheckingOut()) return;
  const sale = pickedSale();
  setCheckingOut(true);
  try {
    const reply = await api.checkout(sale, id);
    // The cart became an order: the next add must start a brand-new cart.
    if (cartId() === id) dropCart('idle');
    closeDrawer();
    startOrder(sale, String((reply && reply.order_id) || id), Date.now() + POLL_FOR_MS, reply);
  } catch (err) {
    if (id !== cartId() && CART_GONE.has(err.code)) return; // the shopper left that sale's cart
    handleError(err);
  } finally {
    setCheckingOut(false);
  }
}
