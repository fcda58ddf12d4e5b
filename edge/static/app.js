/*
 * Flash storefront: native ES modules, no build step, no external assets. This module wires
 * them together: state changes to the views that draw them, DOM events to the actions.
 *
 *   api.js      the JSON API, errors by code       state.js   what the page knows, and on()
 *   session.js  sign in and out, visitors' first add  catalog.js the sale and the product pages
 *   cart.js     add, remove, restore, checkout     order.js   an order polled until it settles
 *   live.js     live stock over the WebSocket      errors.js  a failed call turned into UI
 *   sales.js    the shop's sales and the picker's choice
 *   queue.js    the sale's waiting room: join, wait on its socket, admitted
 *   views/      the DOM: dom.js (helpers), session, header, sales, catalog, cart, countdown,
 *               order, toasts; views read state, never change it
 *
 * Rules the modules keep:
 *  - Server strings only ever reach the DOM through textContent / attributes (views/dom.js el()).
 *  - The server is the authority on stock, carts and time: the countdown comes from the
 *    server's deadline_ms - now_ms, never from a client guess of the hold length.
 *  - The cart id is created synchronously at the first add click, so parallel clicks share it.
 *  - One sale at a time: every call and the socket go to the picked sale's paths, and a cart
 *    or an order stays in the sale it was made in.
 */

import { changeQty, checkout, expireCart, restoreCart } from './cart.js';
import { goToPage, loadPage, loadSale } from './catalog.js';
import { closeLive, connectLive, reconnectNow, subscribe } from './live.js';
import { resumeOrder } from './order.js';
import { enterLine, leaveLine, whenAdmitted } from './queue.js';
import { chooseSale, loadSales } from './sales.js';
import {
  addOrSignIn, checkSession, finishPendingAdd, loadLoginModes, signIn, signOut,
} from './session.js';
import { catalogPage, on, signedInUser } from './state.js';
import { paintAllStock, renderCatalog, renderSkeleton, stockChanged } from './views/catalog.js';
import { closeDrawer, openDrawer, refreshCartButtons, renderCart, showCheckingOut } from './views/cart.js';
import { startCountdown, stopCountdown } from './views/countdown.js';
import { $ } from './views/dom.js';
import { clearSale } from './views/header.js';
import { closeOrder, hideOrder, isOrderOpen } from './views/order.js';
import { renderSalePicker } from './views/sales.js';
import {
  closeSignInPanel, isSignInOpen, openSignInPanel, showSignedIn, showVisitor,
} from './views/session.js';

/** The picked sale on screen: its details, its products and their live stock, for anyone;
    the shopper's cart once signed in. */
function enterSale() {
  loadSale();
  if (signedInUser()) restoreCart();
  loadPage(catalogPage().page);
  connectLive();
}

const addOne = (productId) => changeQty(productId, 'add');

function watchState() {
  on('user', (name) => {
    if (name) {
      showSignedIn(name);
      restoreCart();
      resumeOrder();
      finishPendingAdd(addOne); // the add that asked for an account, in this sale
    } else {
      closeDrawer();
      hideOrder(); // an order being polled resumes after sign-in (resumeOrder)
      leaveLine();
      showVisitor(); // the shop stays: the catalog and its live stock need no account
    }
  });
  on('sales', renderSalePicker);
  on('sale', () => {
    renderSalePicker();
    closeLive(); // the old sale's socket; enterSale opens the new one's
    leaveLine(); // a place in the old sale's line is of no use here
    clearSale();
    renderSkeleton(); // no card of the old sale stays clickable while the new page loads
    enterSale();
  });
  on('catalog', () => {
    renderCatalog();
    subscribe();
  });
  on('stock', stockChanged);
  on('cart', (change) => {
    renderCart();
    if (change.held) startCountdown(expireCart);
    else stopCountdown(change.holdState);
  });
  on('checkout', showCheckingOut);
  on('cooldown', () => {
    paintAllStock();
    refreshCartButtons();
  });
}

function bindEvents() {
  whenAdmitted(() => finishPendingAdd(addOne)); // the add that sent the shopper in line
  $('waiting-leave').addEventListener('click', leaveLine);
  $('queue-join').addEventListener('click', () => {
    if (signedInUser()) enterLine();
    else openSignInPanel('Sign in to join the waiting room.');
  });
  $('signin-form').addEventListener('submit', signIn);
  $('signin-open').addEventListener('click', () => openSignInPanel(''));
  $('signin-close').addEventListener('click', closeSignInPanel);
  $('signout').addEventListener('click', signOut);
  $('grid').addEventListener('click', (event) => {
    const button = event.target.closest('button.add');
    if (button && !button.disabled) addOrSignIn(Number(button.dataset.productId), addOne);
  });
  $('sale-picker').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-sale]');
    if (button) chooseSale(button.dataset.sale);
  });
  $('pagination').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-page]');
    if (button && !button.disabled) goToPage(Number(button.dataset.page));
  });
  $('cart-lines').addEventListener('click', (event) => {
    const button = event.target.closest('button.remove, button.increase');
    if (!button || button.disabled) return;
    changeQty(Number(button.dataset.productId), button.classList.contains('remove') ? 'remove' : 'add');
  });
  $('cart-button').addEventListener('click', openDrawer);
  $('cart-close').addEventListener('click', closeDrawer);
  $('drawer-backdrop').addEventListener('click', closeDrawer);
  $('checkout').addEventListener('click', checkout);
  $('order-close').addEventListener('click', closeOrder);
  $('order-status').addEventListener('click', (event) => {
    if (event.target === event.currentTarget) closeOrder();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    if (isSignInOpen()) closeSignInPanel();
    else if (isOrderOpen()) closeOrder();
    else closeDrawer();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') reconnectNow();
  });
  window.addEventListener('online', reconnectNow);
}

// Module scripts run once the document is parsed (they are deferred), so the DOM is there.
watchState();
bindEvents();
renderSkeleton();
renderCart();
loadLoginModes();
loadSales();
enterSale();
checkSession();
