-- Seed data for the booking sandbox (schema.sql): the three events of the
-- booking API fixture (examples/sandbox/booking_api.py) with rows A-D of ten
-- seats, and some history relative to now(), so the metrics of
-- examples/booking-queries.yml have something to show whenever it is
-- loaded. No invariant is broken: oversold and double-booked seats are
-- for tests to add.

BEGIN;

INSERT INTO events (name, venue, starts_at, capacity, on_sale_at) VALUES
    ('The Usherettes - Live', 'Old Town Hall', '2030-05-01 20:00+00', 40, now() - interval '7 days'),
    ('Swan Lake',             'Royal Opera',   '2030-06-12 19:30+00', 38, now() - interval '3 days'),
    ('Cup Final',             'City Stadium',  '2030-07-20 15:00+00', 40, now() - interval '1 day');

-- rows A to D, seats 1 to 10; row A costs more
INSERT INTO seats (event_id, label, price_cents)
SELECT e.id, r.row || n.num, CASE r.row WHEN 'A' THEN 9500 ELSE 6500 END
FROM events e
CROSS JOIN (VALUES ('A'), ('B'), ('C'), ('D')) AS r(row)
CROSS JOIN generate_series(1, 10) AS n(num);

-- Event 1: 12 seats sold (A1-A10, B1, B2) through holds that were booked.
WITH s AS (
    SELECT id, event_id, label FROM seats
    WHERE event_id = 1 AND label IN ('A1','A2','A3','A4','A5','A6','A7','A8','A9','A10','B1','B2')
), h AS (
    INSERT INTO holds (event_id, seat_id, session_id, created_at, expires_at, released_at)
    SELECT event_id, id, 'sess-' || label, now() - interval '2 hours',
           now() - interval '2 hours' + interval '10 minutes', now() - interval '2 hours' + interval '3 minutes'
    FROM s
    RETURNING id, event_id, seat_id
)
INSERT INTO bookings (event_id, seat_id, hold_id, customer_email, created_at)
SELECT event_id, seat_id, id, 'fan' || seat_id || '@example.com', now() - interval '2 hours' + interval '3 minutes'
FROM h;

-- Event 2: 5 seats sold, 2 of them in the last minute.
WITH s AS (
    SELECT id, event_id, label, row_number() OVER (ORDER BY id) AS n
    FROM seats WHERE event_id = 2 AND label IN ('C1', 'C2', 'C3', 'C4', 'C5')
)
INSERT INTO bookings (event_id, seat_id, customer_email, created_at)
SELECT event_id, id, 'ballet' || n || '@example.com',
       CASE WHEN n <= 2 THEN now() - interval '20 seconds' ELSE now() - interval '30 minutes' END
FROM s;

-- A cancelled booking frees its seat again (event 2, D1).
INSERT INTO bookings (event_id, seat_id, customer_email, status, created_at)
SELECT event_id, id, 'changed.mind@example.com', 'cancelled', now() - interval '1 hour'
FROM seats WHERE event_id = 2 AND label = 'D1';

-- Live holds: 3 on event 1, 2 on event 3, expiring in the next minutes.
INSERT INTO holds (event_id, seat_id, session_id, expires_at)
SELECT event_id, id, 'live-' || label, now() + interval '8 minutes'
FROM seats
WHERE (event_id = 1 AND label IN ('C1', 'C2', 'C3'))
   OR (event_id = 3 AND label IN ('A1', 'A2'));

-- Holds that expired but nobody released: the sweeper is behind (event 3).
INSERT INTO holds (event_id, seat_id, session_id, created_at, expires_at)
SELECT event_id, id, 'stale-' || label, now() - interval '40 minutes', now() - interval '30 minutes'
FROM seats WHERE event_id = 3 AND label IN ('D9', 'D10');

-- A released hold, long gone (event 3).
INSERT INTO holds (event_id, seat_id, session_id, created_at, expires_at, released_at)
SELECT event_id, id, 'gone-' || label, now() - interval '3 hours', now() - interval '2 hours 50 minutes',
       now() - interval '2 hours 55 minutes'
FROM seats WHERE event_id = 3 AND label = 'B5';

-- Payments: one per confirmed booking, plus failures and retries.
INSERT INTO payments (booking_id, provider, amount_cents, status, created_at)
SELECT b.id, CASE WHEN b.id % 3 = 0 THEN 'paypal' WHEN b.id % 3 = 1 THEN 'stripe' ELSE 'adyen' END,
       s.price_cents, 'succeeded', b.created_at
FROM bookings b JOIN seats s ON s.id = b.seat_id
WHERE b.status = 'confirmed';

INSERT INTO payments (booking_id, provider, amount_cents, status, failure_code, created_at) VALUES
    (NULL, 'stripe', 9500, 'failed', 'card_declined',      now() - interval '50 minutes'),
    (NULL, 'stripe', 6500, 'failed', 'insufficient_funds', now() - interval '40 minutes'),
    (NULL, 'adyen',  6500, 'failed', 'refused',            now() - interval '10 minutes'),
    (NULL, 'paypal', 6500, 'pending', NULL,                now() - interval '1 minute');

COMMIT;

ANALYZE;
