import type { Tier } from './layout';
import { WEEKDAYS, type CalendarConfig } from './agent-config';

/**
 * One dump a day; the calendar decides which tier it belongs to, so a weekly or monthly copy costs
 * no second dump. The day is the one in the configured time zone: a 00:30 run in Europe/Paris on the
 * 1st is "the 1st" even though it is still the 31st in UTC.
 */
export function tierFor(date: Date, calendar: CalendarConfig): Tier {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: calendar.timeZone, year: 'numeric', month: 'numeric', day: 'numeric', weekday: 'long' }).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  const month = Number(get('month'));
  const day = Number(get('day'));
  const weekday = get('weekday').toLowerCase();
  if (calendar.yearly && calendar.yearly.month === month && calendar.yearly.day === day) return 'yearly';
  if (calendar.monthly && calendar.monthly.day === day) return 'monthly';
  if (calendar.weekly && WEEKDAYS.indexOf(calendar.weekly.weekday) === WEEKDAYS.indexOf(weekday as (typeof WEEKDAYS)[number])) return 'weekly';
  return 'daily';
}
