@role:router
Feature: Fallback routes during outages
  "A chain is never stronger than its weakest link": alternative routes must be identified,
  coordinated, tested and exercised. As a router, the IUT delivers messages through its
  primary route and, while the primary is out, through its ordered fallbacks. Every route
  is a simulated receiver behind a fault-proxy link at the address the IUT config gives
  ([router] routes); the harness breaks routes the ways networks break and checks, from what
  the receivers got, the declared failover time, failback and delivery semantics.
  Route addresses are fixed for a run, so these scenarios take turns on a router lane (an
  IUT may declare several); the longest come first, so the others fill the lanes beside them.

  Background:
    Given the router's routes run through the fault proxy
    And the router delivers through the primary

  @req:CONT-EXERCISE
  Scenario: an outage exercise: the primary node goes down and comes back
    When the outage exercise "primary-node-outage" runs
    Then the exercise meets the router's declared promises

  @req:CONT-NOLOSS
  Scenario: a flapping primary: nothing lost, nothing delivered twice
    When the fault timeline "flapping-primary" runs while the router is asked to send a message every 100 ms
    Then no message is lost or delivered twice

  @req:CONT-ROUTE-1
  Scenario: a primary that refuses connections: messages go through the fallback within the failover time
    Given the route "primary" is down
    When the router is asked to send 5 messages, 50 ms apart
    Then every message sent during the outage arrives through a fallback within the failover time

  @req:CONT-ROUTE-1
  Scenario: a black-holed primary: messages go through the fallback within the failover time
    Given the route "primary" black-holes traffic
    When the router is asked to send 5 messages, 50 ms apart
    Then every message sent during the outage arrives through a fallback within the failover time

  @req:CONT-ROUTE-1
  Scenario: a primary that resets every connection: messages go through the fallback within the failover time
    Given the route "primary" resets every connection
    When the router is asked to send 5 messages, 50 ms apart
    Then every message sent during the outage arrives through a fallback within the failover time

  @req:CONT-ROUTE-1
  Scenario: a primary slower than the failover time: messages go through the fallback within it
    Given the route "primary" is slower than the failover time
    When the router is asked to send 5 messages, 50 ms apart
    Then every message sent during the outage arrives through a fallback within the failover time

  @req:CONT-ROUTE-2
  Scenario: what goes through the fallback is what the primary would get: same format, same identity
    Given the route "primary" is down
    When the router is asked to send 5 messages, 50 ms apart
    Then the fallback deliveries are valid and carry the router's identity

  @req:CONT-ROUTE-2
  Scenario: after a black hole, the fallback deliveries are still valid and carry the router's identity
    Given the route "primary" black-holes traffic
    When the router is asked to send 5 messages, 50 ms apart
    Then the fallback deliveries are valid and carry the router's identity

  @req:CONT-NOLOSS @req:CONT-FAULT-PROC
  Scenario: a message in flight when the primary fails is not lost
    Given the primary holds the next message without answering
    When the router is asked to send 1 message
    And the primary has the message in flight
    And the route "primary" starts black-holing traffic
    And the router is asked to send 3 messages, 50 ms apart
    Then no message is lost or delivered twice

  @req:CONT-NOLOSS @req:CONT-FAULT-PROC
  Scenario: a primary that tears every write into pieces too slow to finish: nothing lost, nothing changed
    Given the route "primary" tears writes into 16-byte pieces 20 ms apart
    When the router is asked to send 5 messages, 50 ms apart
    Then no message is lost or delivered twice

  @req:CONT-NOLOSS
  Scenario: every route down: nothing is lost, everything arrives after recovery
    Given the route "primary" is down
    And the route "fallback-1" black-holes traffic
    When the router is asked to send 5 messages, 50 ms apart
    And the router has had the failover time to deliver what was sent
    And every route recovers
    Then no message is lost or delivered twice

  @req:CONT-NOLOSS
  Scenario: outage, failover and failback: nothing lost, nothing delivered twice
    Given the route "primary" is down
    When the router is asked to send 5 messages, 50 ms apart
    And the route "primary" recovers
    Then deliveries return to the primary within the failback time
    And no message is lost or delivered twice

  @req:CONT-FAILBACK
  Scenario: after the primary recovers, deliveries return to it as declared
    Given the route "primary" is down
    When the router is asked to send 3 messages, 50 ms apart
    And the route "primary" recovers
    Then deliveries return to the primary within the failback time

  @req:CONT-NOLOSS @serial
  Scenario: the router is killed during an outage: nothing it accepted is lost
    Given the route "primary" is down
    And the route "fallback-1" is down
    When the router is asked to send 3 messages, 50 ms apart
    And the router is killed and restarted
    And every route recovers
    Then no message is lost or delivered twice
