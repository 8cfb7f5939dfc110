import { describe, expect, it } from 'vitest';
import { RecentRecords } from './recent-records';

describe('recent records ring', () => {
  it('keeps the newest records up to its capacity, oldest first, numbered from 1', () => {
    const r = new RecentRecords('node-proxy', 3);
    for (let i = 1; i <= 5; i++) r.push({ n: i }, 1000 + i);
    const page = r.page();
    expect(page).toMatchObject({ kind: 'RecentRecords', proxy: 'node-proxy', capacity: 3, last: 5 });
    expect(page.records.map((x) => [x.seq, x.n, x.time])).toEqual([
      [3, 3, 1003],
      [4, 4, 1004],
      [5, 5, 1005],
    ]);
  });

  it('since returns only newer records and limit the newest few', () => {
    const r = new RecentRecords('waypoint', 10);
    for (let i = 1; i <= 6; i++) r.push({ n: i });
    expect(r.page(4).records.map((x) => x.n)).toEqual([5, 6]);
    expect(r.page(0, 2).records.map((x) => x.n)).toEqual([5, 6]);
    expect(r.page(6).records).toEqual([]);
  });

  it('a record cannot forge its sequence number or time', () => {
    const r = new RecentRecords('node-proxy', 2);
    r.push({ seq: 99, time: 1 }, 5);
    expect(r.page().records[0]).toEqual({ seq: 1, time: 5 });
  });

  it('answers GET /recent queries, and refuses a bad since or limit with 400', () => {
    const r = new RecentRecords('node-proxy', 4);
    r.push({ n: 1 });
    r.push({ n: 2 });
    const ok = r.respond(new URLSearchParams('since=1'));
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).records.map((x: { n: number }) => x.n)).toEqual([2]);
    expect(r.respond(new URLSearchParams('since=-1')).status).toBe(400);
    expect(r.respond(new URLSearchParams('limit=abc')).status).toBe(400);
  });

  it('a record pushed as a function is made only when read, and dropped unread when overwritten', () => {
    const r = new RecentRecords('node-proxy', 2);
    let made = 0;
    const lazy = (n: number) => () => {
      made++;
      return { n };
    };
    r.push(lazy(1), 10);
    r.push(lazy(2), 20);
    r.push(lazy(3), 30); // overwrites 1, which is never made
    expect(made).toBe(0);
    expect(r.page().records).toEqual([
      { n: 2, seq: 2, time: 20 },
      { n: 3, seq: 3, time: 30 },
    ]);
    expect(made).toBe(2);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new RecentRecords('x', 0)).toThrow(/positive integer/);
  });
});
