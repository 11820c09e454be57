@req:FMK-2.2-FW
Feature: Only the traffic needed for the service passes the firewall
  The IUT answers clients on the ports it declares in [firewall] ports and nowhere else.
  Ports only the harness uses (triggers, observation) refuse client addresses, as a
  firewall rule would. Plain text sent to the TLS port is refused (a close, a reset, a TLS
  alert, or an HTTP 4xx error page) and never answered with data.

  @role:server @role:receiver
  Scenario Outline: <what> in plain text to the TLS port is refused without data
    When a client sends <what> in plain text to the IUT's TLS port
    Then the plain-text request is refused without protected data

    Examples:
      | what                                   |
      | an HTTP/1.1 request for protected data |
      | a bare line break                      |
      | an HTTP/2 preface                      |

  @role:server @role:receiver @role:sender @role:router
  Scenario: only the declared ports answer a client address
    When the IUT's listening ports are found and probed from a client address
    Then every port answering a client address is declared for clients
    And the harness-only ports refuse client addresses
