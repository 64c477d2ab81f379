import { test, expect } from '@mixnet/playwright';
import { openDemo, sendMessage } from './helpers';

for (const mode of ['mixnet', 'fast'] as const) {
  test.describe(`${mode} mode`, () => {
    test('two pages exchange messages', async ({ browser, localnet }) => {
      const a = await openDemo(browser, localnet, `mode=${mode}`);
      const b = await openDemo(browser, localnet, `mode=${mode}&gateway=exit`);
      await sendMessage(a.page, b.address, `hello B from A (${mode})`, false);
      await expect(b.page.locator('#inbox .message .text')).toHaveText([`hello B from A (${mode})`]);
      await expect(b.page.locator('#inbox .message .from')).toHaveText(['sender without reply SURBs']);
      await sendMessage(b.page, a.address, `hello A from B (${mode})`, false);
      await expect(a.page.locator('#inbox .message .text')).toHaveText([`hello A from B (${mode})`]);
      await a.page.context().close();
      await b.page.context().close();
    });

    test('an anonymous sender gets a reply through its SURBs', async ({ browser, localnet }) => {
      const a = await openDemo(browser, localnet, `mode=${mode}`);
      const b = await openDemo(browser, localnet, `mode=${mode}`);
      await sendMessage(a.page, b.address, 'who are you?', true);
      const msg = b.page.locator('#inbox .message').filter({ hasText: 'who are you?' });
      await expect(msg.locator('.from')).toHaveText('anonymous sender');
      await msg.locator('button.reply').click();
      await expect(msg.locator('button.reply')).toHaveText('replied');
      // A learns it is a reply to its message to B; B never saw A's address
      await expect(a.page.locator('#inbox .message .text')).toHaveText(['re: who are you?']);
      await expect(a.page.locator('#inbox .message .from')).toHaveText([`reply from ${b.address.slice(0, 6)}…`]);
      await a.page.context().close();
      await b.page.context().close();
    });
  });
}
