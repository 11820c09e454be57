Feature: Iterating changes over a time window
  "On changes, a notification is sent to the integrator; the integrator can iterate its
  whole holding, or only what changed between a start and an end time." The client makes
  changes to its organisation's holding through the IUT's API ([iteration] create_path),
  each answered with its id and change time, then asks for the window between two of those
  times ([iteration] window_path). The window must return exactly the changes its declared
  edges include (from_inclusive, to_inclusive: by default the start is in, the end is out),
  nothing from just outside it, the whole holding must include every change, and another
  organisation's changes must never show up.

  @role:server @req:FMK-2.6.1-NOTIFY
  Scenario: a window from the first change to the last returns exactly the changes inside its edges
    Given a client presenting the certificate "client-5560000001"
    When the client makes 3 changes to its own organisation's holding
    Then a window from the first change to the last returns exactly the changes the declared edges include
    And a window just after the last change returns none of them
    And a window just before the first change returns none of them

  @role:server @req:FMK-2.6.1-NOTIFY
  Scenario: the whole holding includes every change
    Given a client presenting the certificate "client-5560000001"
    When the client makes 2 changes to its own organisation's holding
    Then the whole holding includes every change

  @role:server @req:FMK-2.6.1-NOTIFY
  Scenario: another organisation's changes never appear in the client's windows
    Given a client presenting the certificate "client-5560000001"
    When the client makes 2 changes to its own organisation's holding
    And another organisation makes a change to its own holding
    And the client makes 1 change to its own organisation's holding
    Then a window from the first change to the last returns exactly the changes the declared edges include
    And the other organisation's change appears in none of the client's windows or holding
