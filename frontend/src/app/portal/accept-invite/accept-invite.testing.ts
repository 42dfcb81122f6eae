import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { Component } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';
import { RouterTestingHarness } from '@angular/router/testing';

import { User } from '../../api';
import { Auth } from '../../core/auth';
import { AcceptInvite } from './accept-invite';

// Shared by the accept-invite specs: the constants, and a page driver set up before each test.

// URL-safe base64 with padding: the router decodes %3D to "=", the API call encodes it again.
export const TOKEN = 'tok-en_123=';
export const LOOKUP = { method: 'GET', url: '/api/v1/auth/invites/tok-en_123%3D' };
export const ACCEPT = { method: 'POST', url: '/api/v1/auth/invites/tok-en_123%3D/accept' };
export const INVITE = { email: 'ada@example.org', expires_at: '2030-01-02T03:04:05Z' };
export const GOOD_PASSWORD = 'correct horse battery';

export const USER: User = {
  id: '8d3c6a8e-0f0e-4a57-9d5e-3f1b9a1c2d4e',
  email: 'ada@example.org',
  name: 'Ada Lovelace',
  role: 'user',
  status: 'active',
  has_ssh_key: false,
  created_at: '2030-01-01T00:00:00Z',
};

/** Where the page sends the person once the account is ready. */
export const SIGN_IN_URL = '/login?email=ada@example.org';

/** Stands in for the sign-in page (src/app/login), which fills in the email from `?email=`. */
@Component({ template: '<h1>Sign in to gpulab</h1>' })
class LoginStub {}

export function problem(status: number, code: string, detail = 'details') {
  return { type: 'about:blank', title: 'Problem', status, detail, code };
}

type Field = 'name' | 'password' | 'repeat';

/** The page under test; its state is renewed before each test by `usePage()`. */
export class InvitePage {
  harness!: RouterTestingHarness;
  httpTesting!: HttpTestingController;
  el!: HTMLElement;

  $ = <T extends Element = HTMLElement>(selector: string) => this.el.querySelector<T>(selector);
  input = (id: string) => this.$<HTMLInputElement>(`#invite-${id}`)!;
  submitButton = () => this.$<HTMLButtonElement>('button[type=submit]')!;
  state = () => this.$('section.invite')?.getAttribute('data-state');
  url = () => TestBed.inject(Router).url;
  /** The `email` query parameter of the current address, decoded. */
  emailParam = () => TestBed.inject(Router).parseUrl(this.url()).queryParamMap.get('email');
  notice = () => TestBed.inject(Auth).notice();
  stable = () => this.harness.fixture.whenStable();

  type = async (id: Field, value: string): Promise<void> => {
    const field = this.input(id);
    field.value = value;
    field.dispatchEvent(new Event('input'));
    await this.stable();
  };

  blur = async (id: Field): Promise<void> => {
    this.input(id).dispatchEvent(new Event('blur'));
    await this.stable();
  };

  /** Opens the page and answers the lookup with a valid invite. */
  openForm = async (): Promise<void> => {
    await this.open();
    this.httpTesting.expectOne(LOOKUP).flush(INVITE);
    await this.stable();
  };

  open = async (): Promise<void> => {
    await this.harness.navigateByUrl(`/invite/${encodeURIComponent(TOKEN)}`, AcceptInvite);
    this.el = this.harness.routeNativeElement!;
    await this.stable();
  };

  fillValid = async (name = 'Ada Lovelace', password = GOOD_PASSWORD): Promise<void> => {
    await this.type('name', name);
    await this.type('password', password);
    await this.type('repeat', password);
  };
}

export function usePage(): InvitePage {
  const page = new InvitePage();
  beforeEach(async () => {
    TestBed.configureTestingModule({
      providers: [
        provideRouter([
          { path: 'invite/:token', component: AcceptInvite },
          { path: 'login', component: LoginStub },
        ]),
        provideHttpClient(),
        provideHttpClientTesting(),
      ],
    });
    page.httpTesting = TestBed.inject(HttpTestingController);
    page.harness = await RouterTestingHarness.create();
  });
  afterEach(() => page.httpTesting.verify());
  return page;
}
