// The demo site this repository's localnets serve (the pages the tests open);
// LOCALNET_SITE overrides it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEMO_SITE = process.env.LOCALNET_SITE ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../demo-site/dist');
