/**
 * `text` copied into one flat string. V8 keeps a string built by concatenation as a tree of its
 * pieces (Node's randomUUID() answer is 16 of them, about 490 bytes where the flat 36 characters
 * take 56); a string a chat holds for as long as it lives is worth copying once.
 */
export function flat(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}
