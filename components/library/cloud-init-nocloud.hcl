component "cloud-init-nocloud" {
  version     = "1.0.0"
  description = "cloud-init, configured for the NoCloud data source (a cidata disk or seed directory), with None as the fallback."

  parameter "datasources" {
    type        = list(string)
    default     = ["NoCloud", "None"]
    description = "cloud-init's datasource_list"
  }

  build "packages" "cloud-init" {
    # ifupdown: cloud-init's ENI renderer, as Debian 12's cloud images use.
    install = ["cloud-init", "ifupdown"]
    timeout = "20m"
    retries = 2
  }
  build "file" "datasources" {
    destination = "/etc/cloud/cloud.cfg.d/90-kiln-datasources.cfg"
    content     = "datasource_list: [ ${join(", ", param.datasources)} ]\n"
  }
  validate "shell" "schema" {
    inline = ["cloud-init schema --config-file /etc/cloud/cloud.cfg.d/90-kiln-datasources.cfg || grep -q 'datasource_list' /etc/cloud/cloud.cfg.d/90-kiln-datasources.cfg"]
  }
  test "shell" "ran" {
    inline = [
      "cloud-init status --wait >/dev/null || true",
      "cloud-init status --long",
      "test -e /run/cloud-init/result.json",
    ]
    timeout = "3m"
  }
}
