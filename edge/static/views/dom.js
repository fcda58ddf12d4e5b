/*
 * DOM helpers every view shares. Server strings only ever reach the DOM through textContent
 * and attributes (see el()), never as HTML.
 */

export const $ = (id) => document.getElementById(id);

/** Builds an element. Children strings become text nodes, so they are never parsed as HTML. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

/** Plays a CSS animation again, even when its class is already on the node. */
export function replay(node, className) {
  node.classList.remove(className);
  void node.offsetWidth; // a reflow between removing and adding restarts the animation
  node.classList.add(className);
}

const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
export const formatMoney = (cents) => money.format((Number(cents) || 0) / 100);

export function initials(name) {
  const words = String(name || '').trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => Array.from(w)[0].toUpperCase()).join('');
  return letters || '?';
}

/** Stable hue per product so the same product always gets the same placeholder colour. */
export function hueFor(id) {
  let n = Number(id);
  if (!Number.isFinite(n)) n = Array.from(String(id)).reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  return Math.round((n * 137.508) % 360); // golden angle: neighbouring ids look different
}

/** Says something to screen-reader users only. */
export function announce(text) {
  $('sr-announcer').textContent = text;
}
