/** The one form of an email address the database holds (users.email is unique on it). */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
