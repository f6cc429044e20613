"""Events: every change told once (`tell`), in the change's own transaction, feeding the event
log (the feed and webhooks), the workspace's audit trail and the account's own trail."""
