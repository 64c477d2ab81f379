import { run } from '../../shared-app.js';

void run();
