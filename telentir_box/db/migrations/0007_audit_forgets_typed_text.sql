-- A failed sign-in or a reset request naming no known account kept what was typed as
-- the email, which may be a password typed into the wrong field. It is no longer
-- written; this forgets what earlier versions wrote.
UPDATE auth_audit SET detail = '{}'
WHERE user_id IS NULL AND event IN ('login_failed', 'password_reset_unknown');
