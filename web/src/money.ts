// Money as the CLI shows it (clinic_common/money.py format_minor): ₹1,150.00, integer paise only.
export function formatMinor(amountMinor: bigint, currency = "INR"): string {
  const symbol = currency === "INR" || currency === "" ? "₹" : `${currency} `;
  const sign = amountMinor < 0n ? "-" : "";
  const abs = amountMinor < 0n ? -amountMinor : amountMinor;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const paise = (abs % 100n).toString().padStart(2, "0");
  return `${sign}${symbol}${whole}.${paise}`;
}
