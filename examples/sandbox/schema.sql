-- The booking sandbox's database: events with a capacity, their seats, seat
-- holds that expire, bookings and payments. Small, but shaped like the real
-- thing, so examples/booking-queries.yml has something true to measure.
--
--   psql -d booking -f examples/sandbox/schema.sql -f examples/sandbox/seed.sql
--
-- Deliberately missing: a unique index on a seat's confirmed booking, and a
-- check that bookings stay within capacity. The application is supposed to
-- guarantee both (holds, then checkout); the two invariants in
-- booking-queries.yml watch that it does.

BEGIN;

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL,
    venue       text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    -- places on sale; can be lower than the seat map (seats held back for
    -- production, wheelchair spaces sold separately)
    capacity    integer     NOT NULL CHECK (capacity > 0),
    on_sale_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE seats (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint  NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    label       text    NOT NULL,            -- "A1"
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    UNIQUE (event_id, label)
);

-- A seat held for a customer during checkout. A hold ends by being booked,
-- released (the customer gave up) or by expiring; the sweeper that sets
-- released_at on expired holds is what the "holds past expiry" metric
-- watches.
CREATE TABLE holds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seat_id     bigint      NOT NULL REFERENCES seats (id) ON DELETE CASCADE,
    session_id  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    released_at timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX holds_open ON holds (event_id, expires_at) WHERE released_at IS NULL;

CREATE TABLE bookings (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       bigint      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seat_id        bigint      NOT NULL REFERENCES seats (id) ON DELETE CASCADE,
    hold_id        bigint      REFERENCES holds (id),
    customer_email text        NOT NULL,
    status         text        NOT NULL DEFAULT 'confirmed'
                               CHECK (status IN ('confirmed', 'cancelled', 'refunded')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bookings_event ON bookings (event_id, status);
CREATE INDEX bookings_seat ON bookings (seat_id) WHERE status = 'confirmed';
CREATE INDEX bookings_created ON bookings (created_at);

CREATE TABLE payments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id   bigint      REFERENCES bookings (id) ON DELETE SET NULL,
    provider     text        NOT NULL CHECK (provider IN ('stripe', 'adyen', 'paypal')),
    amount_cents integer     NOT NULL CHECK (amount_cents >= 0),
    currency     char(3)     NOT NULL DEFAULT 'EUR',
    status       text        NOT NULL
                             CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    failure_code text,                      -- the provider's, when status = 'failed'
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'failed') = (failure_code IS NOT NULL))
);
CREATE INDEX payments_provider ON payments (provider, status);

-- The role usherd connects as: it reads, nothing more.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'usher_reader') THEN
        CREATE ROLE usher_reader NOLOGIN;
    END IF;
END
$$;
GRANT SELECT ON events, seats, holds, bookings, payments TO usher_reader;

COMMIT;
