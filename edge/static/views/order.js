/* The order popup: the order's status, its lines and id while it is confirmed. */

import { $, el, formatMoney } from './dom.js';

const ORDER_TEXT = {
  pending: ['Order pending', 'We’re confirming your order. This usually takes a moment.'],
  confirmed: ['Order confirmed', 'Thank you! Your order went through.'], // + unit count, see showOrder
  rejected: ['Order rejected', 'Sorry, the stock ran out before we could confirm your order. Your units were returned to the sale.'],
  expired: ['Order expired', 'The hold ran out before your order went through; the items went back on sale.'],
};

let focusBeforeOpen = null;

/** order: a reply of GET /orders/{id} (or of the checkout, as pending). */
export function showOrder(order) {
  const status = String(order.status || 'pending');
  const [title, detail] = ORDER_TEXT[status] || [`Order ${status}`, ''];
  const text = $('order-status-text');
  text.textContent = title;
  text.dataset.status = status;
  $('order-status').dataset.status = status;
  const units = Number(order.units) || 0;
  $('order-status-detail').textContent = status === 'confirmed' && units
    ? `Thank you! Your order of ${units} ${units === 1 ? 'unit' : 'units'} went through.` : detail;
  const lines = Array.isArray(order.lines) ? order.lines : [];
  $('order-lines').replaceChildren(...lines.map((l) => el('li', {},
    el('span', {}, `${Number(l.qty) || 0} × ${String(l.name ?? `Product ${l.product_id}`)}`),
    el('span', {}, l.price_cents != null ? formatMoney(l.price_cents * (Number(l.qty) || 0)) : ''))));
  $('order-id').textContent = order.order_id ? `Order ${order.order_id}` : '';
  $('order-close').textContent = status === 'pending' ? 'Hide' : 'Continue shopping';
}

/** The title of a settled status, for a toast when the popup was hidden. */
export const orderTitle = (status) => (ORDER_TEXT[status] || [`Order ${status}`])[0];

/** Polling stopped, settled or not: the popup's button no longer says "Hide". */
export function showSettled() {
  $('order-close').textContent = 'Continue shopping';
}

/** Polling gave up before the order settled. */
export function showSlow() {
  $('order-status-detail').textContent = 'This is taking longer than usual. Your units stay reserved while we confirm.';
}

export const isOrderOpen = () => !$('order-status').hidden;

export function openOrder() {
  const modal = $('order-status');
  if (!modal.hidden) return;
  focusBeforeOpen = document.activeElement;
  modal.hidden = false;
  $('order-close').focus();
}

export function closeOrder() {
  $('order-status').hidden = true;
  const back = focusBeforeOpen && focusBeforeOpen.isConnected ? focusBeforeOpen : $('main');
  back.focus({ preventScroll: true });
}

/** Hidden without moving focus (the sign-in form takes it). */
export function hideOrder() {
  $('order-status').hidden = true;
}
