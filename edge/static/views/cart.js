/* The cart: the header's button and badge, the drawer with its lines, total and checkout. */

import { $, el, formatMoney, hueFor, initials, replay } from './dom.js';
import { coolingDown, heldCart, isCheckingOut } from '../state.js';

let focusBeforeOpen = null;

/** The badge, the lines and the total of the cart in state. */
export function renderCart() {
  const cart = heldCart();
  const lines = ((cart && cart.lines) || []).filter((l) => l.qty > 0);
  const units = (cart && cart.units) || lines.reduce((n, l) => n + l.qty, 0);
  const total = lines.reduce((sum, l) => sum + l.price_cents * l.qty, 0);
  const badge = $('cart-count');
  badge.textContent = String(units);
  badge.dataset.empty = String(units === 0);
  $('cart-button').setAttribute('aria-label', `Cart, ${units} ${units === 1 ? 'item' : 'items'}`);
  $('cart-lines').replaceChildren(...lines.map(cartLine));
  $('cart-empty').hidden = lines.length > 0;
  $('cart-total').textContent = formatMoney(total);
  refreshCheckout();
}

function cartLine(line) {
  const id = Number(line.product_id);
  const name = String(line.name ?? `Product ${id}`);
  return el('li', { class: 'cart-line', 'data-product-id': id },
    el('span', { class: 'thumb', style: `--hue:${hueFor(id)}`, 'aria-hidden': 'true' }, initials(name)),
    el('div', { class: 'line-info' },
      el('p', { class: 'line-name' }, name),
      el('p', { class: 'line-price' }, `${formatMoney(line.price_cents)} each`)),
    el('p', { class: 'line-total' }, formatMoney(line.price_cents * line.qty)),
    el('div', { class: 'qty' },
      el('button', { type: 'button', class: 'icon-btn remove', 'data-product-id': id, 'aria-label': `Remove one ${name}`, disabled: coolingDown() }, '−'),
      el('span', { class: 'qty-n', 'aria-label': `Quantity ${line.qty}` }, String(line.qty)),
      el('button', { type: 'button', class: 'icon-btn increase', 'data-product-id': id, 'aria-label': `Add one more ${name}`, disabled: coolingDown() }, '+')));
}

/** The buttons that call the server, after a cooldown started or passed. */
export function refreshCartButtons() {
  for (const b of document.querySelectorAll('#cart-lines button')) b.disabled = coolingDown();
  refreshCheckout();
}

/** The checkout button: its text while an order is placed, enabled only when it can work. */
export function showCheckingOut(busy) {
  $('checkout').textContent = busy ? 'Placing order…' : 'Checkout';
  refreshCheckout();
}

function refreshCheckout() {
  const cart = heldCart();
  const units = (cart && cart.units) || 0;
  $('checkout').disabled = units <= 0 || isCheckingOut() || coolingDown();
}

export function bumpBadge() {
  replay($('cart-count'), 'bump');
}

export function openDrawer() {
  focusBeforeOpen = document.activeElement;
  $('cart-drawer').classList.add('open');
  $('cart-drawer').setAttribute('aria-hidden', 'false');
  $('drawer-backdrop').hidden = false;
  $('cart-button').setAttribute('aria-expanded', 'true');
  $('cart-close').focus();
}

export function closeDrawer() {
  const drawer = $('cart-drawer');
  if (!drawer.classList.contains('open')) return;
  const hadFocus = drawer.contains(document.activeElement);
  drawer.classList.remove('open');
  drawer.setAttribute('aria-hidden', 'true');
  $('drawer-backdrop').hidden = true;
  $('cart-button').setAttribute('aria-expanded', 'false');
  if (hadFocus && focusBeforeOpen && focusBeforeOpen.isConnected) focusBeforeOpen.focus();
}
