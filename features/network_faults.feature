@role:server @req:CONT-FAULT-PROC
Feature: The API survives a flaky network
  The client reaches the IUT through a fault-proxy link of its own (Toxiproxy's model:
  latency, bandwidth, slicing, black holes, resets, outages). Network faults must be
  handled without data loss: answers arrive complete and correct over a degraded link, and
  the IUT serves again as soon as the network recovers.

  Scenario: the API answers completely through 500 ms of latency each way
    Given a client presenting the certificate "client-5560000001"
    And the link "iut-api" adds 500 ms latency
    When the client requests its own organisation's data
    Then the request succeeds with the organisation's data

  Scenario: the API answers completely when the client's writes are torn into small pieces
    Given a client presenting the certificate "client-5560000001"
    And the link "iut-api" slices the client's writes into 16-byte pieces 10 ms apart
    When the client requests its own organisation's data
    Then the request succeeds with the organisation's data

  Scenario: the API answers completely over a 2 KB/s link
    Given a client presenting the certificate "client-5560000001"
    And the link "iut-api" is limited to 2 KB/s
    When the client requests its own organisation's data
    Then the request succeeds with the organisation's data

  Scenario: after a black hole the IUT serves again once the network recovers
    Given a client presenting the certificate "client-5560000001"
    And the link "iut-api" black-holes traffic
    When the client requests its own organisation's data
    Then the client gets no answer
    When the link "iut-api" is restored
    And the client requests its own organisation's data
    Then the request succeeds with the organisation's data

  Scenario: after connections are reset the IUT serves again once the network recovers
    Given a client presenting the certificate "client-5560000001"
    And the link "iut-api" resets connections after 0 ms
    When the client requests its own organisation's data
    Then the client gets no answer
    When the link "iut-api" is restored
    And the client requests its own organisation's data
    Then the request succeeds with the organisation's data

  Scenario: every request during a latency spike is answered completely
    Given a client presenting the certificate "client-5560000001"
    When the fault timeline "latency-spike" runs while the client requests its own organisation's data every 250 ms
    Then the request succeeds with the organisation's data
