/* Toasts: short notices in the corner, one per error code at a time. */

import { $, el } from './dom.js';

const TOAST_MS = 4000;

export function toast(code, text, good = false) {
  const box = $('toasts');
  // Parallel requests tend to fail the same way: one toast per code is enough.
  for (const old of Array.from(box.children)) if (old.dataset.code === code) old.remove();
  const node = el('div', { class: good ? 'toast good' : 'toast', 'data-code': code }, text);
  box.append(node);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => {
    node.classList.add('leaving');
    setTimeout(() => node.remove(), 300);
  }, TOAST_MS);
}
