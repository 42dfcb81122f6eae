import { ChangeDetectionStrategy, Component } from '@angular/core';
import { MatTabsModule } from '@angular/material/tabs';

export type Os = 'linux' | 'macos' | 'windows';

/** The tab to open first: the system the browser runs on, as far as it says. */
export function guessOs(userAgent: string): Os {
  if (/Windows/i.test(userAgent)) {
    return 'windows';
  }
  if (/Macintosh|Mac OS X/i.test(userAgent)) {
    return 'macos';
  }
  return 'linux';
}

const ORDER: Os[] = ['linux', 'macos', 'windows'];

/** How to make an SSH key and print its public half, for each system (a tab each). */
@Component({
  selector: 'app-key-howto',
  imports: [MatTabsModule],
  template: `
    <section class="howto" aria-labelledby="howto-title">
      <h2 id="howto-title">Make a key</h2>
      <p>
        Already have one? Print its <code>.pub</code> file (step 3) and paste that. Otherwise make
        one on the computer you will connect from:
      </p>
      <mat-tab-group [selectedIndex]="firstTab" mat-stretch-tabs="false" animationDuration="0ms">
        <mat-tab label="Linux">
          <ol>
            <li>Open a terminal.</li>
            <li>
              Make the key, and press Enter to keep the suggested file; a passphrase protects the
              key if your computer is lost:
              <pre><code>{{ keygen }}</code></pre>
            </li>
            <li>
              Print the public key, saved in <code>~/.ssh/id_ed25519.pub</code>, and copy the one
              line it shows:
              <pre><code>cat ~/.ssh/id_ed25519.pub</code></pre>
            </li>
          </ol>
        </mat-tab>
        <mat-tab label="macOS">
          <ol>
            <li>Open Terminal (in Applications, Utilities).</li>
            <li>
              Make the key, and press Enter to keep the suggested file; a passphrase protects the
              key if your Mac is lost:
              <pre><code>{{ keygen }}</code></pre>
            </li>
            <li>
              Print the public key, saved in <code>~/.ssh/id_ed25519.pub</code>, and copy the one
              line it shows:
              <pre><code>cat ~/.ssh/id_ed25519.pub</code></pre>
              Or put it straight on the clipboard:
              <pre><code>pbcopy &lt; ~/.ssh/id_ed25519.pub</code></pre>
            </li>
          </ol>
        </mat-tab>
        <mat-tab label="Windows">
          <ol>
            <li>
              Open PowerShell (Windows 10 and 11 include OpenSSH; if
              <code>ssh-keygen</code> is not found, add "OpenSSH Client" under Settings, System,
              Optional features).
            </li>
            <li>
              Make the key, and press Enter to keep the suggested file; a passphrase protects the
              key if your computer is lost:
              <pre><code>{{ keygen }}</code></pre>
            </li>
            <li>
              Print the public key, saved in
              <code>C:\\Users\\&lt;you&gt;\\.ssh\\id_ed25519.pub</code>, and copy the one line it
              shows. In PowerShell:
              <pre><code>Get-Content $env:USERPROFILE\\.ssh\\id_ed25519.pub</code></pre>
              In the Command Prompt:
              <pre><code>type %USERPROFILE%\\.ssh\\id_ed25519.pub</code></pre>
            </li>
          </ol>
        </mat-tab>
      </mat-tab-group>
      <p class="warning">
        Paste only the file ending in <code>.pub</code>. The file without it
        (<code>id_ed25519</code>) is your private key: never paste or send it anywhere.
      </p>
    </section>
  `,
  styles: `
    .howto {
      padding: 1rem 1.25rem;
      background: var(--surface);
      border: 1px solid var(--border);
      border-radius: var(--radius);
    }
    h2 {
      margin: 0 0 0.5rem;
      font-size: 1.2rem;
    }
    ol {
      margin: 1rem 0 0;
      padding-left: 1.5rem;
    }
    li + li {
      margin-top: 0.5rem;
    }
    pre {
      margin: 0.35rem 0;
      padding: 0.5rem 0.75rem;
      /* Wrapped, not scrolled: nothing is hidden at 390 px, and no scroll area needs the keyboard. */
      white-space: pre-wrap;
      overflow-wrap: anywhere;
      background: var(--bg);
      border: 1px solid var(--border);
      border-radius: var(--radius);
    }
    code {
      font-family: var(--mono);
      overflow-wrap: anywhere;
    }
    .warning {
      margin: 1rem 0 0;
      padding: 0.5rem 0.75rem;
      border-radius: var(--radius);
      background: var(--warn-bg);
      color: var(--warn-fg);
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class KeyHowto {
  protected readonly keygen = 'ssh-keygen -t ed25519 -C "you@lab.org"';
  protected readonly firstTab = ORDER.indexOf(
    guessOs(typeof navigator === 'undefined' ? '' : navigator.userAgent),
  );
}
