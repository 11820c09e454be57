Feature: Resend policies
  "A notification that could not be delivered is resent according to the documented resend
  policy." As a sender, the IUT is asked to send messages to a simulated receiver that fails
  deliveries on purpose; the attempts, their intervals, the limits, the message id and the
  final single acceptance are compared with the policy the IUT config declares ([resend]),
  within its tolerance and at its time scale. As a receiver, the IUT gets the resends a lost
  acknowledgement causes and must process each message once.

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: a failed delivery is resent on the declared schedule until it is accepted
    Given a simulated receiver that answers 503 to every attempt but the last the policy allows
    When the IUT sends a message to the simulated receiver
    Then the message is accepted exactly once
    And the intervals between attempts follow the declared policy
    And every attempt carries the same message id and body

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: the sender stops at the declared limit and reports the message undeliverable
    Given a simulated receiver that answers 503 to every attempt
    When the IUT sends a message to the simulated receiver
    Then the receiver gets every attempt the policy allows
    And the intervals between attempts follow the declared policy
    And the IUT reports the message as undeliverable

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: a permanent error is not retried
    Given a simulated receiver that answers a permanent error to every attempt
    When the IUT sends a message to the simulated receiver
    Then the receiver gets exactly one attempt
    And the IUT reports the message as undeliverable

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: Retry-After in seconds is honoured
    Given a simulated receiver that answers 429 with Retry-After 2 seconds once
    When the IUT sends a message to the simulated receiver
    Then the retry waits at least the Retry-After
    And the message is accepted exactly once

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: Retry-After as an HTTP date is honoured
    Given a simulated receiver that answers 503 with a Retry-After date 3 seconds ahead once
    When the IUT sends a message to the simulated receiver
    Then the retry waits at least the Retry-After
    And the message is accepted exactly once

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: a lost acknowledgement leads to one resend with the same id, accepted once
    Given a simulated receiver that drops the acknowledgement once
    When the IUT sends a message to the simulated receiver
    Then the failure is handled as the policy declares
    And every attempt carries the same message id and body

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: a reset connection is handled as the policy declares
    Given a simulated receiver that resets the connection once
    When the IUT sends a message to the simulated receiver
    Then the failure is handled as the policy declares

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: a receiver that hangs past the delivery timeout is handled as the policy declares
    Given a simulated receiver that hangs past the delivery timeout once
    When the IUT sends a message to the simulated receiver
    Then the failure is handled as the policy declares

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: a receiver that is down is handled as the policy declares
    Given a simulated receiver that is down for the first attempt
    When the IUT sends a message to the simulated receiver
    Then the failure is handled as the policy declares

  @role:sender @req:FMK-2.1-MTLS @req:EB-MTLS-1
  Scenario: the sender refuses a receiver with an expired certificate
    Given a simulated receiver that presents the certificate "server-expired" once
    When the IUT sends a message to the simulated receiver
    Then the IUT refuses the receiver's certificate

  @role:sender @req:FMK-2.1-MTLS @req:EB-MTLS-1
  Scenario: the sender refuses a receiver whose certificate names another host
    Given a simulated receiver that presents the certificate "server-wrong-host" once
    When the IUT sends a message to the simulated receiver
    Then the IUT refuses the receiver's certificate

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: a refused receiver certificate is handled as the policy declares
    Given a simulated receiver that presents the certificate "server-untrusted" once
    When the IUT sends a message to the simulated receiver
    Then the IUT refuses the receiver's certificate
    And the failure is handled as the policy declares

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: after a long outage the backlog is not flushed faster than the declared rate
    Given a simulated receiver that answers 503 to every attempt during the first 1500 ms
    When the IUT sends 10 messages to the simulated receiver
    Then every message is accepted exactly once
    And the backlog is not sent faster than the declared rate

  @role:sender @req:FMK-2.6.3-RESEND
  Scenario: messages about one entity keep their order through resends
    Given a simulated receiver that answers 503 to the first message's first 2 attempts
    When the IUT sends 3 messages about the same entity to the simulated receiver
    Then the messages are accepted in the order they were sent

  @role:sender @req:FMK-2.6.3-RESEND @serial
  Scenario: a message queued before the sender crashes is delivered after its restart
    Given a simulated receiver that answers 503 to every attempt during the first 500 ms
    When the IUT sends a message to the simulated receiver
    And the IUT is killed and restarted after its first attempt
    Then the message is accepted exactly once

  @role:sender @req:FMK-2.6.4-LOG @req:SDK-5.1-TRACE
  Scenario: every message the IUT delivers is in its transfer log
    Given a simulated receiver that answers 200
    When the IUT sends a message to the simulated receiver
    Then the message is accepted exactly once
    And the message id appears in the IUT's audit log

  @role:receiver @req:FMK-2.6.3-RESEND
  Scenario: an exact resend is answered with success and processed once
    When the client delivers a valid message twice with the same id
    Then every delivery is answered with success
    And the IUT processed each message once

  @role:receiver @req:FMK-2.6.3-RESEND
  Scenario: a resend with the same id but another body is refused
    When the client delivers a valid message, then the same id with a changed body
    Then the changed duplicate is refused with a conflict status
    And the IUT processed each message once

  @role:receiver @req:FMK-2.6.3-RESEND
  Scenario: out-of-order deliveries with resends are each processed once
    When the client delivers 3 valid messages in reverse order, each twice
    Then every delivery is answered with success
    And the IUT processed each message once

  @role:receiver @req:FMK-2.6.4-LOG @req:SDK-5.1-TRACE
  Scenario: every message the IUT accepts is in its audit log
    When the client delivers a valid message twice with the same id
    Then the message id appears in the IUT's audit log
