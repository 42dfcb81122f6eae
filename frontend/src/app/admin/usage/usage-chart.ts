import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';

import { formatHours } from '../../portal/request/quota-left';
import { type SeriesKey, type Stack, niceMax } from './usage-buckets';

/**
 * Colours of the series, told apart by people with the common colour-vision deficiencies (Okabe
 * and Ito's palette, darkened where needed for 3:1 contrast on white); "others" is grey.
 */
export const PALETTE = [
  '#0072b2',
  '#d55e00',
  '#009e73',
  '#cc79a7',
  '#8a6d00',
  '#56b4e9',
  '#6b7280',
];

const WIDTH = 720;
const HEIGHT = 260;
const PAD = { top: 12, right: 8, bottom: 36, left: 48 };

/** GPU-hours over time as stacked bars, drawn in SVG (no chart library: docs/adr/0015-web-app.md's budget). */
@Component({
  selector: 'app-usage-chart',
  template: `
    <figure>
      <svg
        [attr.viewBox]="'0 0 ' + width + ' ' + height"
        role="img"
        aria-labelledby="usage-chart-title usage-chart-desc"
        preserveAspectRatio="xMidYMid meet"
      >
        <title id="usage-chart-title">GPU-hours over time</title>
        <desc id="usage-chart-desc">{{ summary() }}</desc>
        @for (tick of ticks(); track tick.y) {
          <line
            class="grid"
            [attr.x1]="pad.left"
            [attr.x2]="width - pad.right"
            [attr.y1]="tick.y"
            [attr.y2]="tick.y"
          />
          <text class="axis" [attr.x]="pad.left - 6" [attr.y]="tick.y + 4" text-anchor="end">
            {{ tick.value }}
          </text>
        }
        @for (bar of bars(); track bar.label) {
          <g>
            @for (seg of bar.segments; track seg.key) {
              <rect
                [attr.x]="bar.x"
                [attr.y]="seg.y"
                [attr.width]="bar.width"
                [attr.height]="seg.height"
                [attr.fill]="seg.color"
              >
                <title>{{ bar.label }}, {{ seg.name }}: {{ seg.hours }} GPU-hours</title>
              </rect>
            }
            @if (bar.showLabel) {
              <text
                class="axis"
                [attr.x]="bar.x + bar.width / 2"
                [attr.y]="height - pad.bottom + 16"
                text-anchor="middle"
              >
                {{ bar.short }}
              </text>
            }
          </g>
        }
      </svg>
      @if (keys().length) {
        <figcaption>
          <ul class="legend">
            @for (k of keys(); track $index) {
              <li>
                <span class="swatch" [style.background]="color($index)" aria-hidden="true"></span
                >{{ k.name }}
              </li>
            }
          </ul>
        </figcaption>
      }
    </figure>
  `,
  styles: `
    figure {
      margin: 0;
    }
    svg {
      display: block;
      width: 100%;
      height: auto;
    }
    .grid {
      stroke: var(--border);
    }
    .axis {
      font-size: 11px;
      fill: var(--muted);
    }
    .legend {
      display: flex;
      flex-wrap: wrap;
      gap: 0.25rem 1rem;
      margin: 0.5rem 0 0;
      padding: 0;
      list-style: none;
      font-size: 0.9rem;
    }
    .swatch {
      display: inline-block;
      width: 0.8rem;
      height: 0.8rem;
      margin-right: 0.35rem;
      border-radius: 2px;
      vertical-align: -0.1rem;
    }
  `,
  changeDetection: ChangeDetectionStrategy.OnPush,
})
export class UsageChart {
  readonly keys = input.required<SeriesKey[]>();
  readonly stacks = input.required<Stack[]>();

  protected readonly width = WIDTH;
  protected readonly height = HEIGHT;
  protected readonly pad = PAD;

  private readonly top = computed(() => niceMax(Math.max(0, ...this.stacks().map((s) => s.total))));
  private readonly plotHeight = HEIGHT - PAD.top - PAD.bottom;

  protected readonly ticks = computed(() => {
    const top = this.top();
    return [0, 0.25, 0.5, 0.75, 1].map((f) => ({
      value: tickLabel(top * f, top / 4),
      y: PAD.top + this.plotHeight * (1 - f),
    }));
  });

  protected readonly bars = computed(() => {
    const stacks = this.stacks();
    const keys = this.keys();
    const top = this.top();
    const slot = (WIDTH - PAD.left - PAD.right) / Math.max(1, stacks.length);
    const width = Math.max(2, slot * 0.7);
    // Label every bar when few, else about eight labels along the axis.
    const every = Math.max(1, Math.ceil(stacks.length / 8));
    return stacks.map((stack, i) => {
      let y = PAD.top + this.plotHeight;
      const segments = stack.values
        .map((hours, k) => {
          const height = (hours / top) * this.plotHeight;
          y -= height;
          return {
            key: k,
            name: keys[k]?.name ?? '',
            hours: formatHours(hours),
            color: this.color(k),
            y,
            height,
          };
        })
        .filter((s) => s.height > 0);
      return {
        label: stack.label,
        short: stack.label.slice(5),
        x: PAD.left + slot * i + (slot - width) / 2,
        width,
        segments,
        showLabel: i % every === 0,
      };
    });
  });

  protected readonly summary = computed(() => {
    const stacks = this.stacks();
    if (!stacks.length) {
      return 'No time range.';
    }
    const total = stacks.reduce((a, s) => a + s.total, 0);
    const peak = stacks.reduce((a, s) => (s.total > a.total ? s : a), stacks[0]);
    return `${stacks.length} bars from ${stacks[0].label}; ${formatHours(total)} GPU-hours in all; the most, ${formatHours(peak.total)}, in the bar of ${peak.label}.`;
  });

  protected color(index: number): string {
    const keys = this.keys();
    const isOthers =
      index === keys.length - 1 && keys[index]?.id === null && keys[index]?.name === 'others';
    return isOthers ? PALETTE[PALETTE.length - 1] : PALETTE[index % (PALETTE.length - 1)];
  }
}

/** A tick's value with as many decimals as its step needs, so that no two ticks read alike. */
export function tickLabel(value: number, step: number): string {
  let decimals = 0;
  while (decimals < 6 && Math.abs(Number(step.toFixed(decimals)) - step) > step * 1e-6) {
    decimals += 1;
  }
  return String(Number(value.toFixed(decimals)));
}
