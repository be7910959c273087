# Installs the Cairn agent as a Windows service running as LocalSystem
# (needed for VSS and SeBackupPrivilege). Run elevated.
param(
  [string]$InstallDir = "$env:ProgramFiles\Cairn",
  [string]$StateDir = "$env:ProgramData\Cairn"
)
$ErrorActionPreference = "Stop"
New-Item -ItemType Directory -Force -Path $StateDir | Out-Null
# Only SYSTEM and Administrators may read the agent's keys.
icacls $StateDir /inheritance:r /grant:r "SYSTEM:(OI)(CI)F" "Administrators:(OI)(CI)F" | Out-Null
[Environment]::SetEnvironmentVariable("CAIRN_AGENT_HOME", $StateDir, "Machine")
$exe = Join-Path $InstallDir "cairn-agent.exe"
New-Service -Name "CairnAgent" -DisplayName "Cairn Backup Agent" `
  -BinaryPathName "`"$exe`" run" -StartupType Automatic `
  -Description "Backs up this PC's files to the organisation's storage."
sc.exe failure CairnAgent reset= 86400 actions= restart/10000/restart/60000/restart/300000 | Out-Null
Start-Service CairnAgent
