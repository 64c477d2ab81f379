// The service worker: too short-lived to own a mixnet client (Chrome stops it when idle),
// so it only makes sure the offscreen document that owns one exists.
import { ensureOffscreen } from './offscreen-control.js';

chrome.runtime.onInstalled.addListener(() => void ensureOffscreen());
chrome.runtime.onStartup.addListener(() => void ensureOffscreen());
