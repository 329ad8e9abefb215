// Small DOM helpers: find an element, and show an API error next to the control that caused it.
import type { Problem } from "./api.js";

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** A code such as `NOT_ELIGIBLE` or `BOOKING_CREATED` in plain words: "Not eligible", "Booking created". */
export function words(code: string): string {
  const text = code.toLowerCase().replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** An element showing `code` in words, the code itself in its tooltip. */
export function coded<K extends keyof HTMLElementTagNameMap>(tag: K, code: string, extra = ""): HTMLElementTagNameMap[K] {
  const node = el(tag);
  node.textContent = words(code) + extra;
  node.title = code;
  return node;
}

/** A problem in words on `line`, the server's code and message in its tooltip. */
export function say(line: HTMLElement, problem: Problem): void {
  line.textContent = problem.message;
  line.title = problem.raw;
}

/** Remove every error shown inside `scope`. */
export function clearProblems(scope: HTMLElement): void {
  for (const p of scope.querySelectorAll<HTMLElement>("[data-error-for]")) {
    p.textContent = "";
    p.removeAttribute("title");
  }
  for (const c of scope.querySelectorAll<HTMLElement>("[aria-invalid]")) c.removeAttribute("aria-invalid");
}

function matches(names: string, field: string): boolean {
  const wanted = names.split(/\s+/);
  const last = field.split(".").pop() ?? field;
  return wanted.includes(field) || wanted.includes(last);
}

/**
 * Each BadRequest field violation goes to the error line of the control named by it (data-field,
 * `patient.phone` also matches `phone`); the message, and violations no control owns, go to the
 * scope's form-wide error line (data-error-for=""), or to `fallback`.
 */
export function showProblem(scope: HTMLElement, problem: Problem, fallback?: HTMLElement): void {
  clearProblems(scope);
  const general = fallback ?? scope.querySelector<HTMLElement>('[data-error-for=""]');
  const leftover: string[] = [];
  for (const [field, description] of problem.fields) {
    const control = [...scope.querySelectorAll<HTMLElement>("[data-field]")].find((c) =>
      matches(c.dataset.field ?? "", field),
    );
    const line = [...scope.querySelectorAll<HTMLElement>("[data-error-for]")].find(
      (p) => p.dataset.errorFor && matches(p.dataset.errorFor, field),
    );
    if (control && line) {
      control.setAttribute("aria-invalid", "true");
      line.textContent = description.charAt(0).toUpperCase() + description.slice(1); // the field is the control's
      line.title = field; // the API's name for it, for whoever needs it
    } else {
      leftover.push(`${field}: ${description}`);
    }
  }
  const text = problem.fields.size && !leftover.length ? "" : [problem.message, ...leftover].join(" — ");
  const target = general ?? scope.querySelector<HTMLElement>("[data-error-for]");
  if (target && text) say(target, { ...problem, message: text });
  scope.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
}

/** A phone as operators see it on lists and paper: the last four digits only. */
export function maskPhone(phone: string): string {
  if (!phone) return "";
  const digits = phone.replace(/\D/g, "");
  return digits.length <= 4 ? "•".repeat(digits.length) : `••••${digits.slice(-4)}`;
}
